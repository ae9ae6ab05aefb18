"""The instrument-jittered CNN encoder beside the shipped one and the physics classifier, with and
without the physics gate, on the zero-shot spectra and the real chevkinite map.

    PYTHONPATH=. python bench/encoder_jitter.py --encoder runs/encoder-jitter.pt [--per 4]
        [--shared ../shared] [--out docs/data/encoder_jitter.json]

(a) The zero-shot set of ``bench/physics_accuracy.py`` (its ``simulate``: the 50 minerals at 15 kV
/ 125 eV / axis from -0.5 keV, 20 kV / 130 eV / -0.2 keV, 25 kV / 140 eV / +0.1 keV, a further
+8 eV and gain 1.0005 the file does not state, 500-20,000 counts, ``--per`` of each): accuracy
per counts bin of the physics classifier (the simulator's 50 minerals, reference minerals as
there), of each encoder, and of each encoder gated by the physics
(:class:`~mingraph.spectra.point_classifier.GatedEncoder`, calibrated on each setting's summed
spectrum, started at the stated beam and 130 eV).  For the gated ones also the share called
unknown and the share given a wrong mineral.

(b) rosettasciio's chevkinite-rock map (30 × 30 px, 20 kV): what each encoder calls its 900
pixels, alone and gated (started at 20 kV, 130 eV, calibrated on the map's summed spectrum).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def shares(labels: np.ndarray, names: list[str], top: int = 6) -> dict:
    """The ``top`` most common names of ``labels`` (id len(names): unknown) as fractions."""
    n = len(labels)
    full = [*names, "unknown"]
    return {full[k]: round(v / n, 4) for k, v in Counter(labels.tolist()).most_common(top)}


def main() -> None:
    import torch
    from physics_accuracy import COUNTS, SETTINGS, simulate

    from mingraph.acquire.simulate.minerals import MINERALS
    from mingraph.learn.bundle import default_model_path, load_bundle
    from mingraph.spectra.calibrate import Instrument, fit_calibration
    from mingraph.spectra.encoder import class_probabilities, load_encoder
    from mingraph.spectra.mineral_library import simulator_library
    from mingraph.spectra.physics import classify_spectra
    from mingraph.spectra.physics_model import build_model
    from mingraph.spectra.point_classifier import GatedEncoder

    ap = argparse.ArgumentParser()
    ap.add_argument("--encoder", type=Path, default=REPO / "runs" / "encoder-jitter.pt")
    ap.add_argument("--per", type=int, default=4)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "data" / "encoder_jitter.json")
    a = ap.parse_args()
    torch.set_num_threads(1)
    names = [m.name for m in MINERALS]
    encoders = {"shipped": load_bundle(default_model_path()).encoder, "jitter": load_encoder(a.encoder)}
    assert all(e.n_classes == 50 for e in encoders.values())
    lib = simulator_library()
    zs = sorted(
        {
            z
            for m in lib
            for _, f in m.end_members
            for z in __import__("xraylib").CompoundParser(f)["Elements"]
        }
    )
    from mingraph.spectra.reference_minerals import reference_model

    res: dict = {"encoder": str(a.encoder), "encoder_meta": encoders["jitter"].meta, "per": a.per}
    lab_all, cnt_all, set_all = [], [], []
    got: dict[str, list] = {}
    for si, (kv, fwhm, offset) in enumerate(SETTINGS):
        y, lab, info = simulate(kv, fwhm, offset, a.per, 1000 + si)  # the zero-shot set's own seeds
        lab_all.append(lab)
        cnt_all.append(info["counts"])
        set_all.append(np.full(len(lab), si))
        t0 = time.perf_counter()
        fit = fit_calibration(y.sum(0), Instrument(kv, 35.0, 130.0, source="metadata"), elements=zs)
        model = build_model(lib, fit.instrument)
        got.setdefault("physics", []).append(
            classify_spectra(y, model, reference=reference_model(model)).label
        )
        t_phys = time.perf_counter() - t0
        for key, enc in encoders.items():
            t0 = time.perf_counter()
            got.setdefault(key, []).append(class_probabilities(enc, y).argmax(1))
            t_enc = time.perf_counter() - t0
            g = GatedEncoder(enc, names, Instrument(kv, 35.0, 130.0, source="metadata"))
            t0 = time.perf_counter()
            g.calibrate(y.sum(0))
            got.setdefault(key + "+gate", []).append(g.class_probabilities(y).argmax(1))
            print(
                f"setting {si} {key}: encoder {t_enc:.2f} s, gated {time.perf_counter() - t0:.1f} s",
                flush=True,
            )
        print(f"setting {si}: physics {t_phys:.1f} s", flush=True)
    lab, cnt, st = (np.concatenate(v) for v in (lab_all, cnt_all, set_all))
    zero: dict = {}
    for key, parts in got.items():
        pred = np.concatenate(parts)
        ok = pred == lab
        zero[key] = {
            "by_counts": {str(n): round(float(ok[cnt == n].mean()), 3) for n in COUNTS},
            "all": round(float(ok.mean()), 3),
            "by_setting": [round(float(ok[st == s].mean()), 3) for s in range(len(SETTINGS))],
            "unknown": round(float((pred == 50).mean()), 3),
            "wrong_mineral": round(float(((pred != lab) & (pred < 50)).mean()), 3),
        }
        print(key, json.dumps(zero[key]), flush=True)
    res["zero_shot"] = zero

    from mingraph.acquire.formats import read_hypermap

    bcf = a.shared / "data" / "formats" / "bruker" / "30x30_instructively_packed_16bit_compressed.bcf"
    if bcf.is_file():
        cube = np.asarray(read_hypermap(bcf).cube).reshape(-1, 3000)
        got_chev: dict = {}
        chev: dict = {"pixels": len(cube), "median_counts": float(np.median(cube.sum(1)))}
        for key, enc in encoders.items():
            alone = class_probabilities(enc, cube).argmax(1)
            g = GatedEncoder(enc, names, Instrument(20.0, 35.0, 130.0, source="metadata"))
            fit = g.calibrate(cube.sum(0, dtype=np.float64))
            gated = g.class_probabilities(cube).argmax(1)
            got_chev[key], got_chev[key + "+gate"] = alone, gated
            phys50 = g.physics.class_probabilities(cube).argmax(1)  # the gate's own physics, 50 classes
            chev[key] = {
                "alone": shares(alone, names),
                "gated": shares(gated, names),
                "gated_unknown": round(float((gated == 50).mean()), 4),
                "calibration": fit.instrument.to_dict(),
            }
            chev["physics_50_classes"] = shares(np.minimum(phys50, 50), names)
            print(key, json.dumps(chev[key]), flush=True)
        # the physics classifier over the shipped library (bench/physics_real_map.py's dense map):
        # what each encoder calls the pixels of each phase it names
        from mingraph.spectra.classify_map import classify_counts

        dense, _, _ = classify_counts(cube, Instrument(20.0, 35.0, 130.0, source="metadata"))
        phys = np.array(dense.label_names())
        chev["physics_library"] = {k: round(v / len(phys), 4) for k, v in Counter(phys).most_common(8)}
        calls: dict = {}
        for phase, _ in Counter(phys).most_common(8):
            sel = phys == phase
            calls[phase] = {"pixels": int(sel.sum())}
            for key in encoders:
                calls[phase][key] = shares(got_chev[key][sel], names, 3)
                calls[phase][key + "+gate"] = shares(got_chev[key + "+gate"][sel], names, 3)
        chev["calls_on_physics_phases"] = calls
        print(json.dumps(calls, indent=1), flush=True)
        res["chevkinite"] = chev
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
