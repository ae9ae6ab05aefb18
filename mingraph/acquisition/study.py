"""The acquisition study (issue 15): F1 against the fraction of pixels measured and against
acquisition minutes, for every strategy, on held-out simulated fields and a larger field.

Fields: simulated with seeds the shipped model never saw (its training fields are seeds
100000–100399; the strategies' settings were chosen on seeds 100020–100025).  Every strategy
runs a full session (:func:`mingraph.acquisition.run_session`, 3 rounds after a seed set of
40 % of the budget) with the fusion model; "random + nearest EDS" is random sampling labelled
by nearest-EDS (the classical reference).  Every strategy's session is also scored by
nearest-EDS labelling of that session's own points, each with the class the model was given
(:func:`mingraph.acquisition.predictions.nearest_point_labels`): what the model adds on the
points the strategy chose.  Scores are pooled over the fields' valid pixels
(:mod:`mingraph.common.metrics`, unclassified = miss), as ``mingraph evaluate`` pools them.

Run (not in CI: ~30 minutes on 2 loaded CPU cores): ``mingraph acquire-study OUT --docs docs/``;
chosen fields, fractions and model: ``mingraph acquire-study OUT --seeds 4242,4243 --fractions
0.01 --large 0 --methods random,grid --model FILE``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from mingraph.acquisition import run_session
from mingraph.acquisition.predictions import nearest_point_labels
from mingraph.common.errors import InputError
from mingraph.common.files import file_digest, save_figure, write_csv, write_text
from mingraph.common.metrics import confusion, scores
from mingraph.common.outputs import output_folder

BUDGETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.025, 0.05)
LARGE_BUDGETS = (0.005, 0.01, 0.025, 0.05)
TEST_SEEDS = tuple(range(4242, 4246))
LARGE_SEED = 4300
METHODS = ("random", "uncertainty", "segments", "random + nearest EDS", "slads", "grid", "bright")
LARGE_METHODS = ("random", "uncertainty", "segments", "random + nearest EDS")


def _session(sample, bundle, budget, method, seed):
    if method == "random + nearest EDS":
        return run_session(
            sample, bundle, budget, "random", predictor="nearest", seed=seed, every_round=False
        )
    return run_session(sample, bundle, budget, method, seed=seed, every_round=False)


def run_grid(
    fields: list, bundle, budgets, methods=METHODS, log=print, cache: Path | None = None, model_tag: str = ""
) -> list[dict]:
    """One record per (method, budget): pooled weighted/macro F1, points, mean acquisition
    minutes per field (measurement + inference + choosing) over ``fields``, and
    ``nearest_f1_weighted``/``nearest_f1_macro``: nearest-EDS labelling of the same sessions'
    points, pooled the same way (None when the point classifier gives no class per point).
    Records are appended to ``cache`` (JSON lines) as they finish and read back from it when the
    run is resumed, only for the same ``model_tag`` (the model file's digest): another model's
    records are never mixed in; records written before the nearest-EDS fields existed are
    resumed as they are (:func:`table` leaves their column empty)."""
    n_classes = len(bundle.class_names)
    names = [f.name for f in fields]
    done = {}
    if cache is not None and cache.is_file():
        for line in cache.read_text().splitlines():
            r = json.loads(line)
            done[(r["method"], r["budget"], tuple(r["fields"]), r.get("model", ""))] = r
    out = []
    for method in methods:
        for budget in budgets:
            if (method, budget, tuple(names), model_tag) in done:
                out.append(done[(method, budget, tuple(names), model_tag)])
                continue
            cm = np.zeros((n_classes, n_classes + 1), np.int64)
            cm_near = cm.copy()
            minutes, points, t0 = [], [], time.perf_counter()
            for i, f in enumerate(fields):
                s = _session(f, bundle, budget, method, seed=i)
                truth = np.where(f.valid, f.labels, -1)
                cm += confusion(truth, s.maps.labels, n_classes, unclassified=True)
                near = nearest_point_labels(bundle, f.valid, s.points, s.point_evidence)
                if near is None:
                    cm_near = None
                elif cm_near is not None:
                    cm_near += confusion(truth, near, n_classes, unclassified=True)
                minutes.append(s.curve[-1]["minutes"])
                points.append(len(s.points))
            sc = scores(cm)
            sn = scores(cm_near) if cm_near is not None else {"f1_weighted": None, "f1_macro": None}
            rec = {
                "method": method,
                "budget": budget,
                "f1_weighted": sc["f1_weighted"],
                "f1_macro": sc["f1_macro"],
                "points_per_field": float(np.mean(points)),
                "minutes_per_field": float(np.mean(minutes)),
                "nearest_f1_weighted": sn["f1_weighted"],
                "nearest_f1_macro": sn["f1_macro"],
            }
            rec["fields"] = names
            rec["model"] = model_tag
            out.append(rec)
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                with open(cache, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
            same = _gain(rec, _nearest(rec))
            log(
                f"{method:22s} {budget * 100:5.2f} %  F1 {rec['f1_weighted']:.3f} / {rec['f1_macro']:.3f}"
                + (f"  vs nearest EDS on the same points {same}" if same else "")
                + f"  ({time.perf_counter() - t0:.0f} s)"
            )
    return out


def plot_curves(records: list[dict], path: Path, title: str, x: str = "budget") -> Path:
    """F1 (weighted, macro) against the budget (%) or the acquisition minutes, one line a method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key in zip(axes, ("f1_weighted", "f1_macro")):
        for m in dict.fromkeys(r["method"] for r in records):
            rs = sorted((r for r in records if r["method"] == m), key=lambda r: r[x])
            xs = [r[x] * (100 if x == "budget" else 1) for r in rs]
            style = "--" if "nearest" in m else "-"
            ax.plot(xs, [r[key] for r in rs], style, marker="o", ms=3, label=m)
        ax.set_xscale("log")
        ax.set_xlabel("EDS points, % of pixels" if x == "budget" else "acquisition minutes per field")
        ax.set_ylabel(key.replace("_", " "))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def _gain(r: dict, o: dict | None) -> str:
    return f"{r['f1_weighted'] - o['f1_weighted']:+.3f} / {r['f1_macro'] - o['f1_macro']:+.3f}" if o else ""


def _nearest(r: dict) -> dict | None:
    """The record's nearest-EDS scores on its own points as F1 keys; None in a record without
    them (written before they were recorded, or a point classifier without classes)."""
    if r.get("nearest_f1_weighted") is None or r.get("nearest_f1_macro") is None:
        return None
    return {"f1_weighted": r["nearest_f1_weighted"], "f1_macro": r["nearest_f1_macro"]}


def table(records: list[dict]) -> str:
    """A markdown table: each method's pooled F1 beside random sampling (fusion model), random +
    nearest EDS at the same budget, and nearest EDS on the same points the method chose (empty
    for a record without those scores)."""
    ref = {(r["method"], r["budget"]): r for r in records}
    lines = [
        "| method | EDS % | F1 weighted | F1 macro | vs random (fusion) | vs random + nearest EDS "
        "| vs nearest EDS on the same points | min/field |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in records:
        rnd, near = ref.get(("random", r["budget"])), ref.get(("random + nearest EDS", r["budget"]))
        lines.append(
            f"| {r['method']} | {r['budget'] * 100:g} | {r['f1_weighted']:.3f} | {r['f1_macro']:.3f} | "
            f"{_gain(r, rnd)} | {_gain(r, near)} | {_gain(r, _nearest(r))} | {r['minutes_per_field']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def check_study(seeds, budgets, methods, large_budgets=(), large_methods=()) -> None:
    """Check a study's settings before any field is simulated.

    Parameters
    ----------
    seeds : sequence of int
        Simulator seeds of the test fields (at least one, each ≥ 0).
    budgets, large_budgets : sequence of float
        EDS fractions of the valid pixels, each in (0, 1].
    methods, large_methods : sequence of str
        Names of :data:`METHODS` (``methods`` at least one).

    Raises
    ------
    InputError
        Naming the ``acquire-study`` option (``--seeds``, ``--fractions``, ``--methods``).
    """
    if not len(seeds) or any(int(s) != s or s < 0 for s in seeds):
        raise InputError("acquire-study", "--seeds", f"expected seeds ≥ 0, got {list(seeds)}")
    for b in list(budgets) + list(large_budgets):
        if not 0.0 < b <= 1.0:
            raise InputError("acquire-study", "--fractions", f"expected fractions in (0, 1], got {b:g}")
    if not len(methods):
        raise InputError("acquire-study", "--methods", "expected at least one method")
    for m in list(methods) + list(large_methods):
        if m not in METHODS:
            raise InputError("acquire-study", "--methods", f"expected any of {', '.join(METHODS)}, got {m!r}")


def run_study(
    out: str | os.PathLike,
    docs: str | os.PathLike | None = None,
    size: int = 128,
    seeds=TEST_SEEDS,
    large: int = 256,
    budgets=BUDGETS,
    large_budgets=LARGE_BUDGETS,
    model=None,
    log=print,
    methods=METHODS,
    large_methods=LARGE_METHODS,
) -> Path:
    """Run the study into ``out`` (``study.json``, ``records-*.csv``, ``tables.md``, figures);
    figures also into ``docs``/img when given.  ``seeds`` the simulator seeds of the test fields
    (``size`` px a side), ``budgets`` their EDS fractions; ``large`` = 0 skips the larger field.
    Finished (method, budget) records are kept in ``out/records.jsonl``: a rerun resumes, and a
    rerun with fewer ``methods`` reports those only.  Raises InputError (:func:`check_study`) for
    bad seeds, fractions or methods, and naming the model file when its classes are not the
    simulated fields'."""
    from mingraph.acquire.simulate import simulate_tile
    from mingraph.learn.bundle import default_model_path, load_model, resolve_model

    check_study(seeds, budgets, methods, large_budgets if large else (), large_methods if large else ())
    output_folder(out, "acquire-study", create=False)  # refused before any work
    bundle = load_model(model)
    tiles = [simulate_tile(s, size).field(f"test-{s}") for s in seeds]
    if list(tiles[0].class_names) != list(bundle.class_names):
        raise InputError(
            bundle.path or model or "model", "class_names", "the model's classes are not the simulator's"
        )
    out = output_folder(out, "acquire-study")
    tag = file_digest(default_model_path() if model is None else resolve_model(model))
    t0 = time.perf_counter()
    res = {
        "tiles": run_grid(
            tiles, bundle, budgets, methods, log=log, cache=out / "records.jsonl", model_tag=tag
        )
    }
    if large:
        big = [simulate_tile(LARGE_SEED, large).field(f"large-{LARGE_SEED}")]
        res["large"] = run_grid(
            big, bundle, large_budgets, large_methods, log=log, cache=out / "records.jsonl", model_tag=tag
        )
    res["settings"] = {
        "size": size,
        "seeds": list(seeds),
        "budgets": list(budgets),
        "large_budgets": list(large_budgets) if large else [],
        "large": large,
        "large_seed": LARGE_SEED,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_text(out / "study.json", json.dumps(res, indent=1) + "\n")
    md = []
    for key, recs in (("tiles", res["tiles"]), ("large", res.get("large", []))):
        if not recs:
            continue
        cols = [c for c in dict.fromkeys(k for r in recs for k in r) if c != "fields"]  # old and new records
        write_csv(out / f"records-{key}.csv", [cols] + [[r.get(c, "") for c in cols] for r in recs])
        md.append(f"### {key}\n\n" + table(recs))
        for d in [out] + ([Path(docs) / "img"] if docs else []):
            plot_curves(recs, d / f"acquire-f1-{key}.png", f"F1 against EDS points ({key})")
            plot_curves(
                recs,
                d / f"acquire-minutes-{key}.png",
                f"F1 against acquisition time ({key})",
                "minutes_per_field",
            )
    write_text(out / "tables.md", "\n".join(md))
    return out
