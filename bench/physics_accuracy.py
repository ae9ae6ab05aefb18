"""Zero-shot accuracy of the physics classifier on simulated point spectra, beside the trained CNN encoder.

    PYTHONPATH=. python bench/physics_accuracy.py [--per 4] [--out docs/data/physics_classifier.json]

The shipped 50 minerals at three instrument settings (15 kV, 125 eV FWHM, axis from -0.5 keV;
20 kV, 130 eV, -0.2 keV; 25 kV, 140 eV, +0.1 keV), at 500, 1000, 2000, 5000, 10000 and 20000
counts, ``--per`` spectra of each.  Each spectrum is the simulator's expected spectrum recorded
on the detector's own axis (10 eV channels from the offset; true energy = file energy + 8 eV and
gain 1.0005, an error the file does not state), Poisson noise by the simulator's counter-based
generator, then read onto the grid as the readers do (``calibration.to_grid``) with the file's
axis.  The classifier's calibration is fitted to the summed spectrum of each setting's set.
Leave one out: each mineral's spectra against the other 49.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SETTINGS = [(15.0, 125.0, -500.0), (20.0, 130.0, -200.0), (25.0, 140.0, 100.0)]
COUNTS = [500, 1000, 2000, 5000, 10000, 20000]
TRUE_SHIFT_EV, TRUE_GAIN = 8.0, 1.0005


def simulate(
    kv: float, fwhm: float, offset: float, per: int, seed: int
) -> tuple[np.ndarray, np.ndarray, dict]:
    """(n, 3000) grid spectra, (n,) labels and the file's axis record for one setting."""
    from mingraph.acquire.calibration import to_grid
    from mingraph.acquire.simulate.eds import poisson_spectra
    from mingraph.acquire.simulate.eds_physics import phase_shapes
    from mingraph.spectra.calibrate import Instrument
    from mingraph.spectra.physics_model import to_recorded

    shapes = phase_shapes({"beam_kev": kv, "fwhm_mnka_ev": fwhm})[:50]
    # the detector's channel k holds true energies offset + shift + gain * 10 k
    inst = Instrument(kv, 35.0, fwhm, offset + TRUE_SHIFT_EV, TRUE_GAIN)
    native = np.array([to_recorded(s, inst) for s in shapes])
    labels = np.repeat(np.arange(50), per * len(COUNTS))
    counts = np.tile(np.repeat(COUNTS, per), 50).astype(np.float64)
    lam = native[labels] * counts[:, None]
    out = np.zeros(lam.shape, np.float32)
    idx = np.arange(labels.size, dtype=np.uint64)
    poisson_spectra(lam, idx, idx * 0, np.uint64(seed), np.uint64(0xEDC), 0, out)
    edges = offset + 10.0 * np.arange(3001)
    grid, rec = to_grid(out.astype(np.uint32), edges, "simulated")
    return grid, labels, {"counts": counts, "offset_ev": offset}


def main() -> None:
    import torch

    from mingraph.learn.bundle import default_model_path, load_bundle, point_classes, point_features
    from mingraph.spectra.calibrate import Instrument, fit_calibration
    from mingraph.spectra.mineral_library import simulator_library
    from mingraph.spectra.physics import classify_spectra
    from mingraph.spectra.physics_model import build_model
    from mingraph.spectra.reference_minerals import reference_model

    ap = argparse.ArgumentParser()
    ap.add_argument("--per", type=int, default=4)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "data" / "physics_classifier.json")
    a = ap.parse_args()
    torch.set_num_threads(2)
    lib = simulator_library()
    names = [m.name for m in lib]
    bundle = load_bundle(default_model_path())
    zs = sorted(
        {
            z
            for m in lib
            for _, f in m.end_members
            for z in __import__("xraylib").CompoundParser(f)["Elements"]
        }
    )
    res: dict = {"settings": [], "counts": COUNTS, "per": a.per, "classes": names}
    all_lab, all_phys, all_cnn, all_n = [], [], [], []
    loo_unknown = np.zeros(50)
    loo_other = np.zeros(50)
    loo_total = np.zeros(50)
    for si, (kv, fwhm, offset) in enumerate(SETTINGS):
        y, lab, info = simulate(kv, fwhm, offset, a.per, 1000 + si)
        t0 = time.perf_counter()
        fit = fit_calibration(y.sum(0), Instrument(kv, 35.0, 130.0, source="metadata"), elements=zs)
        t_cal = time.perf_counter() - t0
        model = build_model(lib, fit.instrument)
        r = classify_spectra(y, model, reference=reference_model(model))
        cnn = point_classes(bundle, point_features(bundle, y))
        all_lab.append(lab)
        all_phys.append(r.label)
        all_cnn.append(cnn)
        all_n.append(info["counts"])
        res["settings"].append(
            {
                "beam_kev": kv,
                "fwhm_mnka_ev": fwhm,
                "axis_offset_ev": offset,
                "true_extra_shift_ev": TRUE_SHIFT_EV,
                "true_gain": TRUE_GAIN,
                "fitted": fit.instrument.to_dict(),
                "calibration_s": round(t_cal, 2),
                "physics_accuracy": float((r.label == lab).mean()),
                "physics_unknown": float((r.label == 50).mean()),
                "cnn_accuracy": float((cnn == lab).mean()),
            }
        )
        print(res["settings"][-1], flush=True)
        for c in range(50):
            # the whole set against the list without mineral c, scored on c's spectra
            sub = build_model([m for i, m in enumerate(lib) if i != c], fit.instrument)
            sel = lab == c
            rl = classify_spectra(y, sub, reference=reference_model(sub))
            rl.label = rl.label[sel]
            loo_total[c] += sel.sum()
            loo_unknown[c] += (rl.label == 49).sum()
            loo_other[c] += (rl.label != 49).sum()
            if (rl.label != 49).any():
                other = Counter(sub.names[k] for k in rl.label[rl.label != 49])
                res.setdefault("loo_errors", {}).setdefault(names[c], Counter()).update(other)
                at = Counter(int(n) for n in np.asarray(info["counts"])[sel][rl.label != 49])
                res.setdefault("loo_errors_by_counts", Counter()).update(at)
    lab, phys, cnn, cnt = (np.concatenate(v) for v in (all_lab, all_phys, all_cnn, all_n))
    res["physics_accuracy"] = float((phys == lab).mean())
    res["cnn_accuracy"] = float((cnn == lab).mean())
    res["physics_unknown"] = float((phys == 50).mean())
    res["by_counts"] = {
        str(n): {
            "physics": float((phys == lab)[cnt == n].mean()),
            "cnn": float((cnn == lab)[cnt == n].mean()),
        }
        for n in COUNTS
    }
    res["per_class"] = {
        names[c]: {
            "physics_accuracy": float((phys[lab == c] == c).mean()),
            "physics_errors": dict(
                Counter(names[k] if k < 50 else "unknown" for k in phys[lab == c] if k != c)
            ),
            "cnn_accuracy": float((cnn[lab == c] == c).mean()),
            "leave_one_out_unknown": float(loo_unknown[c] / loo_total[c]),
            "leave_one_out_other_mineral": float(loo_other[c] / loo_total[c]),
        }
        for c in range(50)
    }
    res["leave_one_out_unknown"] = float(loo_unknown.sum() / loo_total.sum())
    res["leave_one_out_classes_at_least_90pc_unknown"] = int((loo_unknown / loo_total >= 0.9).sum())
    res["loo_errors"] = {k: dict(v) for k, v in res.get("loo_errors", {}).items()}
    res["loo_errors_by_counts"] = {str(k): v for k, v in sorted(res.get("loo_errors_by_counts", {}).items())}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=1) + "\n")
    print(
        json.dumps(
            {k: res[k] for k in ("physics_accuracy", "cnn_accuracy", "leave_one_out_unknown", "by_counts")}
        )
    )


if __name__ == "__main__":
    main()
