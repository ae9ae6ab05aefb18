"""The physics classifier on rosettasciio's real Bruker maps: phase shares, calibration, a figure.

    PYTHONPATH=. python bench/physics_real_map.py [--shared ../shared]

The chevkinite-rock map (30 × 30 px, 20 kV, ~20,000 counts a pixel) dense and on a regular grid
of every third row and column (100 of 900 pixels, 11 %); the P45 map (~22 counts a pixel) as it
is and summed over 4 × 4 and 8 × 8 pixels.  Writes ``docs/data/physics_real_maps.json`` and
``docs/img/physics_chevkinite.png`` (the phase map, and each phase's summed spectrum with the
expected spectrum of its class at the fitted calibration).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import xraylib

REPO = Path(__file__).resolve().parents[1]
ABSENT = ("Ta", "Nb", "Sn", "Zr", "Pb", "Zn", "Ba", "Th", "Y", "S", "Ce", "W", "Mo", "U")


def summary(res, lib) -> dict:
    names = res.label_names()
    n = len(names)
    shares = {k: round(v / n, 4) for k, v in Counter(names).most_common()}
    bad = {}
    for k in set(int(x) for x in res.label if x < len(lib)):
        els = {
            xraylib.AtomicNumberToSymbol(z)
            for _, f in lib[k].end_members
            for z in xraylib.CompoundParser(f)["Elements"]
        }
        if els & set(ABSENT):
            bad[lib[k].name] = round(float((res.label == k).mean()), 4)
    groups = Counter(lib[int(k)].group for k in res.label if k < len(lib))
    return {
        "pixels": n,
        "classified": round(float((res.label < len(lib)).mean()), 4),
        "shares": shares,
        "group_shares": {k: round(v / n, 4) for k, v in groups.most_common()},
        "minerals_with_absent_elements": bad,
        "mixtures": round(float(res.mixture.mean()), 4),
        "dispersion": round(res.dispersion, 2),
        "median_counts": float(np.median(res.counts)),
    }


def main() -> None:
    from mingraph.acquire.formats import read_hypermap
    from mingraph.spectra.calibrate import Instrument
    from mingraph.spectra.classify_map import bin_map, classify_counts
    from mingraph.spectra.mineral_library import read_library

    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    a = ap.parse_args()
    root = a.shared / "data" / "formats" / "bruker"
    lib = read_library()
    out: dict = {}
    t0 = time.perf_counter()
    h = read_hypermap(root / "30x30_instructively_packed_16bit_compressed.bcf")
    t_read = time.perf_counter() - t0
    start = Instrument(20.0, 35.0, 130.0, source="metadata")
    cube = np.asarray(h.cube)
    dense, fit, times = classify_counts(cube.reshape(-1, 3000), start, lib)
    dense_k, _, times_k = classify_counts(cube.reshape(-1, 3000), start, lib, fit_continuum=True)
    grid_idx = np.array([r * 30 + c for r in range(0, 30, 3) for c in range(0, 30, 3)])
    grid, fit_g, _ = classify_counts(cube.reshape(-1, 3000)[grid_idx], start, lib)
    out["chevkinite"] = {
        "read_s": round(t_read, 2),
        "timings_s": {k: round(v, 2) for k, v in times.items()},
        "calibration": fit.to_dict(),
        "dense": summary(dense, lib),
        "grid_11pc": summary(grid, lib) | {"calibration": fit_g.instrument.to_dict()},
        "dense_continuum_fitted": summary(dense_k, lib) | {"continuum_scale": times_k["continuum_scale"]},
        "dense_vs_grid_agreement": round(float((dense.label[grid_idx] == grid.label).mean()), 4),
    }
    p45 = read_hypermap(root / "P45_the_default_job.bcf")
    c45 = np.asarray(p45.cube)
    kv = 20.0
    out["p45"] = {"shape": list(c45.shape[:2]), "median_counts": float(np.median(c45.sum(-1)))}
    for b in (1, 4, 8):
        cb = bin_map(c45, b) if b > 1 else c45
        try:
            r, f, _ = classify_counts(cb.reshape(-1, 3000), Instrument(kv, 35.0, 130.0), lib)
            out["p45"][f"bin_{b}"] = summary(r, lib) | {"calibration": f.instrument.to_dict()}
        except Exception as e:  # an InputError when even the sum is too small
            out["p45"][f"bin_{b}"] = {"refused": str(e)}
    (REPO / "docs" / "data").mkdir(parents=True, exist_ok=True)
    (REPO / "docs" / "data" / "physics_real_maps.json").write_text(
        json.dumps(out, indent=1, default=float) + "\n"
    )
    print(json.dumps(out, indent=1, default=float))
    figure(cube, dense, fit, lib, REPO / "docs" / "img" / "physics_chevkinite.png")


def figure(cube, res, fit, lib, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mingraph.spectra.physics_model import build_model

    model = build_model(lib, fit.instrument)
    names = res.label_names()
    top = [n for n, _ in Counter(names).most_common() if not n.startswith("unknown")][:7]
    codes = {n: i for i, n in enumerate(top)}
    img = np.array([codes.get(n, -1) for n in names], float).reshape(cube.shape[:2])
    img[img < 0] = np.nan
    fig, ax = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [1, 1.6]})
    cmap = plt.get_cmap("tab10", len(top))
    ax[0].imshow(img, cmap=cmap, vmin=-0.5, vmax=len(top) - 0.5, interpolation="nearest")
    ax[0].set_title("phase map (white: unknown)")
    for i, n in enumerate(top):
        ax[0].plot([], [], "s", color=cmap(i), label=n)
    ax[0].legend(loc="upper left", bbox_to_anchor=(0, -0.02), ncol=2, fontsize=8)
    ax[0].set_xticks([])
    ax[0].set_yticks([])
    y = cube.reshape(-1, 3000).astype(np.float64)
    yb = model.bin(y)
    centre = (model.edges[:-1] + model.edges[1:]) / 2 * 10 / 1000
    for i, n in enumerate(top[:5]):
        sel = np.array([x == n for x in names])
        ys = yb[sel].sum(0)
        k = int(Counter(res.candidate[sel]).most_common(1)[0][0])
        mu = model.shapes[k] * ys.sum()
        off = 10.0 ** (1.2 * i)
        ax[1].semilogy(centre, ys * off, color=cmap(i), lw=1, label=f"{n} ({sel.sum()} px)")
        ax[1].semilogy(centre, mu * off, color="k", lw=0.6, ls="--")
    ax[1].set_xlim(0.4, 10)
    ax[1].set_xlabel("energy (keV, grid)")
    ax[1].set_ylabel("counts per 40 eV bin (offset per phase)")
    ax[1].set_title("summed spectrum per phase; dashed: its class's expected spectrum")
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
