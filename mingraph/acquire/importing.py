"""Turn real files (BSE, labels, sampling mask, spectrum image) into a mingraph dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mingraph.acquire.dataset import SPLITS, TileRecord, write_dataset
from mingraph.acquire.readers import read_bse, read_class_names, read_labels, read_mask
from mingraph.errors import InputError

DEFAULT_PIXEL_UM = 1.0


def resolve_pixel_size(given: float | None, from_file: float | None, source: object, say) -> float:
    """The pixel size (µm): ``given`` (--pixel-size) over the file's own, else 1 µm with a notice."""
    if given is not None:
        if not (np.isfinite(given) and given > 0):
            raise InputError("--pixel-size", "pixel size", f"expected a positive size in µm, got {given}")
        if from_file is not None and not np.isclose(given, from_file, rtol=1e-3):
            say(f"pixel size: {given:g} µm from --pixel-size (the file says {from_file:.4g} µm)")
        return float(given)
    if from_file is not None:
        say(f"pixel size: {from_file:.4g} µm from {source}")
        return float(from_file)
    say(
        f"pixel size: {source} does not say; using {DEFAULT_PIXEL_UM:g} µm "
        "(grain sizes and areas will be in these units): pass --pixel-size to set it"
    )
    return DEFAULT_PIXEL_UM


def import_field(
    out: str | Path,
    bse: str | Path | None = None,
    labels: str | Path | None = None,
    eds_mask: str | Path | None = None,
    spectra: str | Path | None = None,
    valid: str | Path | None = None,
    classes: str | Path | None = None,
    pixel_size_um: float | None = None,
    split: str = "test",
    name: str | None = None,
    overwrite: bool = False,
    say=None,
) -> Path:
    """Write one measured field as a one-tile dataset; every input is checked against the BSE shape.

    ``pixel_size_um`` (µm) overrides the spectrum file's own pixel size; when neither exists the
    field gets 1 µm and ``say`` (a callable taking one line, e.g. ``click.echo``) is told so, as it
    is told the spectrum file's calibration and which of its images was taken as BSE.
    """
    say = say or (lambda line: None)
    if split not in SPLITS:
        raise InputError("--split", "split", f"expected one of {SPLITS}, got {split!r}")
    cube = None
    file_px = None
    calibration = None
    if spectra is not None:
        from mingraph.acquire.calibration import summary_line
        from mingraph.acquire.spectrum_files import read_hypermap

        hm = read_hypermap(spectra)
        cube, embedded_bse, file_px, calibration = hm.cube, hm.bse, hm.pixel_size_um, hm.calibration
        say(f"{spectra}: {summary_line(calibration)}")
        if bse is None and embedded_bse is not None:
            say(f"{spectra}: BSE from its image {hm.bse_title!r}")
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
    pixel_size_um = resolve_pixel_size(pixel_size_um, file_px, spectra or bse, say)
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
        **({"calibration": calibration} if calibration is not None else {}),
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
) -> Path:
    """Simulate ``n_tiles`` tiles of ``size``×``size`` into a dataset (deterministic 80/10/10 split)."""
    from tqdm import tqdm

    from mingraph.acquire.dataset import prepare_output, split_of
    from mingraph.acquire.simulate import simulate_tile
    from mingraph.acquire.simulate.minerals import class_names

    if n_tiles < 1:
        raise InputError("--tiles", "tiles", f"expected at least 1 tile, got {n_tiles}")
    if size < 1:
        raise InputError("--size", "size", f"expected a positive tile size, got {size}")
    prepare_output(Path(out), overwrite)
    seeds = np.random.SeedSequence(seed).generate_state(n_tiles, dtype=np.uint64)

    def records():
        for i in tqdm(range(n_tiles), desc="simulate", unit="tile", disable=not progress):
            t = simulate_tile(int(seeds[i] >> np.uint64(1)), size, size, params)
            yield TileRecord(
                tile_id=f"sim-{i:06d}",
                split=split_of(i, seed),
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
