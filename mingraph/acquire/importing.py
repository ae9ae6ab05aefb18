"""Turn real files (BSE, labels, sampling mask, spectrum image) into a mingraph dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mingraph.acquire.dataset import SPLITS, TileRecord, write_dataset
from mingraph.acquire.readers import read_bse, read_class_names, read_labels, read_mask, read_spectrum_image
from mingraph.errors import InputError


def import_field(
    out: str | Path,
    bse: str | Path | None = None,
    labels: str | Path | None = None,
    eds_mask: str | Path | None = None,
    spectra: str | Path | None = None,
    valid: str | Path | None = None,
    classes: str | Path | None = None,
    pixel_size_um: float = 1.0,
    split: str = "test",
    name: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write one measured field as a one-tile dataset; every input is checked against the BSE shape."""
    if split not in SPLITS:
        raise InputError("--split", "split", f"expected one of {SPLITS}, got {split!r}")
    cube = None
    if spectra is not None:
        cube, embedded_bse = read_spectrum_image(spectra)
        if bse is None:
            if embedded_bse is None:
                raise InputError(spectra, "bse", "the file holds no BSE image of the map's size: pass --bse")
            bse_img = embedded_bse
        else:
            bse_img = read_bse(bse)
            if bse_img.shape != cube.shape[:2]:
                raise InputError(
                    spectra,
                    "spectra",
                    f"map size {cube.shape[:2]} differs from the BSE image {bse_img.shape} ({bse})",
                )
    elif bse is not None:
        bse_img = read_bse(bse)
    else:
        raise InputError(
            "import", "bse", "give a BSE image (--bse) or a spectrum image that holds one (--spectra)"
        )
    shape = bse_img.shape
    lab = read_labels(labels, shape) if labels is not None else None
    mask = read_mask(eds_mask, shape, "eds_mask") if eds_mask is not None else None
    if mask is not None and not mask.any():
        raise InputError(eds_mask, "eds_mask", "no pixel is marked as measured (the mask is empty)")
    valid_mask = read_mask(valid, shape, "valid") if valid is not None else np.ones(shape, bool)
    if classes is not None:
        names = read_class_names(classes)
    else:
        n = int(lab.max()) + 1 if lab is not None and lab.size and lab.max() >= 0 else 0
        names = [f"phase {i}" for i in range(n)]
    if lab is not None and lab.max() >= len(names):
        raise InputError(
            labels, "labels", f"phase id {int(lab.max())} has no name in {classes} ({len(names)} names)"
        )
    rec = TileRecord(
        tile_id=name or Path(bse or spectra).stem,
        split=split,
        bse=bse_img,
        valid=valid_mask,
        labels=lab,
        eds_mask=mask,
        pixel_size_um=pixel_size_um,
        eds_kind="dense" if cube is not None else "none",
        spectra=cube,
    )
    meta = {
        "kind": "imported",
        "sources": {
            k: str(v)
            for k, v in dict(
                bse=bse, labels=labels, eds_mask=eds_mask, spectra=spectra, classes=classes
            ).items()
            if v is not None
        },
    }
    return write_dataset(out, [rec], names, meta=meta, overwrite=overwrite)


def simulate_dataset(
    out: str | Path,
    n_tiles: int,
    size: int = 150,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    params: dict | None = None,
    split: str | None = None,
) -> Path:
    """Simulate ``n_tiles`` tiles of ``size``×``size`` into a dataset: a deterministic 80/10/10
    split, or every tile in ``split`` (e.g. "test" for a held-out evaluation set)."""
    from tqdm import tqdm

    from mingraph.acquire.dataset import prepare_output, split_of
    from mingraph.acquire.simulate import simulate_tile
    from mingraph.acquire.simulate.minerals import class_names

    if n_tiles < 1:
        raise InputError("--tiles", "tiles", f"expected at least 1 tile, got {n_tiles}")
    if split is not None and split not in SPLITS:
        raise InputError("--split", "split", f"expected one of {SPLITS}, got {split!r}")
    if size < 1:
        raise InputError("--size", "size", f"expected a positive tile size, got {size}")
    prepare_output(Path(out), overwrite)
    seeds = np.random.SeedSequence(seed).generate_state(n_tiles, dtype=np.uint64)

    def records():
        for i in tqdm(range(n_tiles), desc="simulate", unit="tile", disable=not progress):
            t = simulate_tile(int(seeds[i] >> np.uint64(1)), size, size, params)
            yield TileRecord(
                tile_id=f"sim-{i:06d}",
                split=split or split_of(i, seed),
                bse=t.bse,
                valid=t.valid,
                labels=t.labels,
                pixel_size_um=float(t.params["pixel_size_um"]),
                eds_kind="simulated",
                eds_seed=int(t.seed),
                eds_params=t.eds_params,
            )

    meta = {"kind": "simulated", "seed": seed, "tile_size": size, "params": params or {}}
    return write_dataset(out, records(), class_names(), meta=meta, overwrite=overwrite)
