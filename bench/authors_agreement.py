"""Pixel agreement of ``mingraph predict`` (converted authors' model) with the authors' pipeline.

    PYTHONPATH=. python bench/authors_agreement.py OUT [--shared SHARED]

SHARED (default: the ``shared`` folder beside the repository) holds ``models/authors/`` (the
authors' released ``model.ckpt`` and ``eds_emb_model.onnx``) and ``data/real/`` (the public real
examples of the README, "Development").

Writes into OUT: ``authors.pt`` (``mingraph convert-model --from authors``), and per case a BSE
image, a POINTS.npz and ``mingraph predict``'s output folder; then runs the authors' own pipeline
(tests/authors_reference.py: their builder's edge lists merged by PyG's ``to_undirected``, the
checkpoint's two PyG GAT blocks, onnxruntime on the raw spectra) on the same input and prints the
share of pixels with equal class ids: over all pixels, and over the pixels whose nearest EDS
point is unique (no distance tie).  Cases: the real TIMA tile of ``SHARED/data/real`` (150×150)
with EDS points drawn at random (1 %, 5 %) and on a regular grid (TIMA "dots", ties everywhere),
and a 256×256 crop of the real field with TIMA's own measured-pixel mask.  The spectra are
simulated (no real spectra are public): Poisson counts (2000 per spectrum) of the simulator's
mineral spectra, one mineral per labelled phase, or per BSE grey-level band where no labels exist.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

MINERALS = [
    "quartz",
    "albite",
    "microcline",
    "cryolite",
    "annite",
    "zircon",
    "fluorite",
    "pyrochlore",
]  # Pitinga-like


def _spectra(classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from mingraph.acquire.simulate.eds_physics import mineral_spectrum

    shapes = np.stack([mineral_spectrum(m) for m in MINERALS])
    lam = shapes / shapes.sum(1, keepdims=True) * 2000.0
    return rng.poisson(lam[classes % len(MINERALS)]).astype(np.float32)


def cases(shared: Path, out: Path) -> list[tuple[str, Path, Path]]:
    """Write every case's BSE image and POINTS.npz; [(name, bse, points)]."""
    import tifffile
    from PIL import Image

    from mingraph.acquire.formats.images import read_bse

    real = shared / "data" / "real"
    rng = np.random.default_rng(0)
    tile_bse = real / "tile-bse.png"
    phases = tifffile.imread(real / "tile-phases.tiff")
    ids = np.unique(phases, return_inverse=True)[1].reshape(phases.shape)
    h, w = phases.shape
    res = []

    def write(name, bse_path, rc, classes):
        pts = out / f"{name}-points.npz"
        np.savez(pts, rc=rc.astype(np.int32), spectra=_spectra(classes, rng))
        res.append((name, bse_path, pts))

    for frac in (0.01, 0.05):
        flat = rng.choice(h * w, size=int(round(frac * h * w)), replace=False)
        rc = np.stack([flat // w, flat % w], 1)
        write(f"tile-random-{frac:g}", tile_bse, rc, ids[rc[:, 0], rc[:, 1]])
    rr, cc = np.mgrid[3:h:8, 3:w:8]
    rc = np.stack([rr.ravel(), cc.ravel()], 1)
    write("tile-grid-8px", tile_bse, rc, ids[rc[:, 0], rc[:, 1]])
    field = read_bse(real / "field-bse.png")[:256, :256]
    crop = out / "field-crop-bse.png"
    Image.fromarray(np.round(field * 65535).astype(np.uint16)).save(crop)
    mask = np.asarray(Image.open(real / "field-pixelmask.png"))[:256, :256] > 0
    rc = np.argwhere(mask)
    bands = np.digitize(field, np.quantile(field, [0.25, 0.5, 0.75]))
    write("field-crop-tima-mask", crop, rc, bands[rc[:, 0], rc[:, 1]])
    return res


def unique_nearest(h: int, w: int, rc: np.ndarray) -> np.ndarray:
    """(H, W) True where one EDS point alone is nearest (brute force over the points)."""
    yy, xx = np.mgrid[0:h, 0:w]
    best = np.full((h, w), np.inf)
    count = np.zeros((h, w), int)
    for r, c in rc:
        d = (yy - r) ** 2 + (xx - c) ** 2
        count = np.where(d < best, 1, np.where(d == best, count + 1, count))
        best = np.minimum(best, d)
    return count == 1


def main() -> None:
    import tifffile
    from authors_reference import authors_predict

    from mingraph.acquire.formats.images import read_bse

    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    ckpt, onnx = a.shared / "models/authors/model.ckpt", a.shared / "models/authors/eds_emb_model.onnx"
    model = a.out / "authors.pt"
    cli = [sys.executable, "-m", "mingraph.cli"]
    if not model.is_file():
        subprocess.run(
            [*cli, "convert-model", "--from", "authors", ckpt, "--encoder", onnx, model], check=True
        )
    rows = []
    for name, bse, pts in cases(a.shared, a.out):
        pred = a.out / f"{name}-predict"
        subprocess.run(
            [*cli, "predict", "--model", model, "--bse", bse, "--points", pts, "--out", pred, "--overwrite"],
            check=True,
            capture_output=True,
        )
        ours = tifffile.imread(pred / "phase_map.tif")
        with np.load(pts) as z:
            rc, spectra = z["rc"], z["spectra"]
        img = read_bse(bse)
        ref = authors_predict(ckpt, onnx, img, rc, spectra)
        same = ours == ref
        uniq = unique_nearest(*img.shape, rc)
        rows.append(
            {
                "case": name,
                "pixels": int(same.size),
                "eds_points": int(len(rc)),
                "tied_pixels": int((~uniq).sum()),
                "agree_all": float(same.mean()),
                "agree_untied": float(same[uniq].mean()),
                "classes_used": int(len(np.unique(ref))),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    (a.out / "agreement.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
