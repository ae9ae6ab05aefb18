"""The acquisition study (issue 15): F1 against the fraction of pixels measured and against
acquisition minutes, for every strategy, on held-out simulated fields and a larger field.

Fields: simulated with seeds the shipped model never saw (its training fields are seeds
100000–100399; the strategies' settings were chosen on seeds 100020–100025).  Every strategy
runs a full session (:func:`mingraph.acquisition.run_session`, 3 rounds after a seed set of
40 % of the budget) with the fusion model; "random + nearest EDS" is random sampling labelled
by nearest-EDS (the classical reference).  Scores are pooled over the fields' valid pixels
(:mod:`mingraph.common.metrics`, unclassified = miss), as ``mingraph evaluate`` pools them.

Run (not in CI: ~30 minutes on 2 loaded CPU cores): ``mingraph acquire-study OUT --docs docs/``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from mingraph.acquisition import run_session
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
    minutes per field (measurement + inference + choosing) over ``fields``.  Records are appended
    to ``cache`` (JSON lines) as they finish and read back from it when the run is resumed, only
    for the same ``model_tag`` (the model file's digest): another model's records are never mixed in."""
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
            minutes, points, t0 = [], [], time.perf_counter()
            for i, f in enumerate(fields):
                s = _session(f, bundle, budget, method, seed=i)
                cm += confusion(np.where(f.valid, f.labels, -1), s.maps.labels, n_classes, unclassified=True)
                minutes.append(s.curve[-1]["minutes"])
                points.append(len(s.points))
            sc = scores(cm)
            rec = {
                "method": method,
                "budget": budget,
                "f1_weighted": sc["f1_weighted"],
                "f1_macro": sc["f1_macro"],
                "points_per_field": float(np.mean(points)),
                "minutes_per_field": float(np.mean(minutes)),
            }
            rec["fields"] = names
            rec["model"] = model_tag
            out.append(rec)
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                with open(cache, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
            log(
                f"{method:22s} {budget * 100:5.2f} %  F1 {rec['f1_weighted']:.3f} / {rec['f1_macro']:.3f}"
                f"  ({time.perf_counter() - t0:.0f} s)"
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


def table(records: list[dict]) -> str:
    """A markdown table: each method's pooled F1 beside random sampling (fusion model) and
    random + nearest EDS at the same budget."""
    ref = {(r["method"], r["budget"]): r for r in records}
    lines = [
        "| method | EDS % | F1 weighted | F1 macro | vs random (fusion) | vs random + nearest EDS | min/field |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in records:
        rnd, near = ref.get(("random", r["budget"])), ref.get(("random + nearest EDS", r["budget"]))
        lines.append(
            f"| {r['method']} | {r['budget'] * 100:g} | {r['f1_weighted']:.3f} | {r['f1_macro']:.3f} | "
            f"{_gain(r, rnd)} | {_gain(r, near)} | {r['minutes_per_field']:.3f} |"
        )
    return "\n".join(lines) + "\n"


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
    figures also into ``docs``/img when given.  ``large`` = 0 skips the larger field.  Finished
    (method, budget) records are kept in ``out/records.jsonl``: a rerun resumes, and a rerun with
    fewer ``methods`` reports those only."""
    from mingraph.acquire.simulate import simulate_tile
    from mingraph.learn.bundle import default_model_path, load_model, resolve_model

    out = output_folder(out, "acquire-study")
    bundle = load_model(model)
    tag = file_digest(default_model_path() if model is None else resolve_model(model))
    t0 = time.perf_counter()
    tiles = [simulate_tile(s, size).field(f"test-{s}") for s in seeds]
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
        "large": large,
        "large_seed": LARGE_SEED,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_text(out / "study.json", json.dumps(res, indent=1) + "\n")
    md = []
    for key, recs in (("tiles", res["tiles"]), ("large", res.get("large", []))):
        if not recs:
            continue
        cols = [c for c in recs[0] if c != "fields"]
        write_csv(out / f"records-{key}.csv", [cols] + [[r[c] for c in cols] for r in recs])
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
