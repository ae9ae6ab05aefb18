"""The shipped fusion model fed by the physics classifier instead of its trained encoder (issue 20).

On simulated fields the model never saw (seeds 4242 onwards, 150 x 150 px; its training fields
are seeds 100000-100399), at 1 % and 5 % EDS, the same random points for every method:

- the fusion model with the trained CNN encoder's probabilities (50 classes);
- the fusion model with the physics classifier's probabilities over a mineral list plus unknown
  (no retraining), calibrated on each field's points: by default the simulator's 50 minerals
  (the truth's classes), the rest of the shipped library as reference minerals;
- nearest-EDS labelling with each classifier's point classes.

Scores are pooled weighted / macro F1 over the fields' pixels, the truth's 50 simulator minerals
matched to the library by name; a pixel the physics leaves unknown counts as wrong.  Writes
``docs/data/physics_fusion.json``.

Run: ``PYTHONPATH=. .venv/bin/python bench/physics_fusion.py --fields 40``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from mingraph.acquire.simulate import simulate_tile
from mingraph.common.metrics import confusion, scores
from mingraph.learn.bundle import load_model, point_classes, with_classifier
from mingraph.spectra.calibrate import Instrument
from mingraph.workflows.predict import measure_points, predict_field
from mingraph_kernels.nearest import nearest_eds_labels


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fields", type=int, default=40)
    ap.add_argument("--size", type=int, default=150)
    ap.add_argument("--out", default="docs/data/physics_fusion.json")
    ap.add_argument(
        "--minerals",
        default=None,
        help="The physics' list (default: the simulator's 50, the truth's classes).",
    )
    a = ap.parse_args()
    from mingraph.analyse.mineralogy.minerals import DEFAULT_LIST

    minerals = a.minerals or str(DEFAULT_LIST)
    base = load_model(None)
    lib_names = [n.lower() for n in with_classifier(base, "physics", Instrument(), minerals).class_names]
    res = {}
    for fraction in (0.01, 0.05):
        n_l = len(lib_names)
        cms = {
            k: np.zeros((n_l, n_l + 1), np.int64)
            for k in ("fusion_encoder", "fusion_physics", "nearest_encoder", "nearest_physics")
        }
        secs = {"encoder": 0.0, "physics": 0.0}
        unknown_points = n_points = 0
        for seed in range(4242, 4242 + a.fields):
            s = simulate_tile(seed, a.size).field()
            to_lib = np.array([lib_names.index(n.lower()) for n in s.class_names])
            truth = np.where(s.valid, to_lib[s.labels], -1)
            for kind in ("encoder", "physics"):
                b = (
                    base
                    if kind == "encoder"
                    else with_classifier(
                        base, "physics", Instrument(beam_kev=s.eds.params["beam_kev"]), minerals
                    )
                )
                t0 = time.perf_counter()
                rc, feats = measure_points(s, b, fraction, "random", seed)
                pred = predict_field(b, s.bse, s.valid, rc, feats, progress=False)
                secs[kind] += time.perf_counter() - t0
                pc = point_classes(b, feats)
                if kind == "encoder":  # the model's 50 classes -> the library's ids
                    lab = np.where(pred.labels >= 0, to_lib[np.maximum(pred.labels, 0)], -1)
                    pc = to_lib[pc]
                else:
                    lab = pred.labels
                    unknown_points += int((pc < 0).sum())
                    n_points += len(pc)
                near = nearest_eds_labels(*s.shape, rc, np.asarray(pc, np.int64))
                cms[f"fusion_{kind}"] += confusion(truth, lab, n_l, unclassified=True)
                cms[f"nearest_{kind}"] += confusion(truth, near, n_l, unclassified=True)
        row = {}
        for k, cm in cms.items():
            sc = scores(cm)
            row[k] = {"f1_weighted": round(sc["f1_weighted"], 4), "f1_macro": round(sc["f1_macro"], 4)}
        row["physics_unknown_points"] = round(unknown_points / max(n_points, 1), 4)
        row["seconds"] = {k: round(v, 1) for k, v in secs.items()}
        res[f"{fraction:g}"] = row
        print(fraction, json.dumps(row))
    out = {
        "protocol": f"{a.fields} simulated fields, seeds 4242-{4241 + a.fields}, {a.size}x{a.size} px, random points, pooled F1",
        "command": f"PYTHONPATH=. .venv/bin/python bench/physics_fusion.py --fields {a.fields}"
        + (f" --minerals {a.minerals}" if a.minerals else ""),
        "minerals": minerals if a.minerals else "the simulator's 50 (mingraph/data/minerals.csv)",
        "results": res,
    }
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
