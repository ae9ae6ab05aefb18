"""Import measured fields into a dataset (:func:`import_field`) and simulate datasets
(:func:`simulate_dataset`); ``field_files.py`` reads one field's files into a record."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mingraph.acquire.collection import add_fields
from mingraph.acquire.dataset import SPLITS, TileRecord, write_dataset
from mingraph.acquire.field_files import (
    DEFAULT_PIXEL_UM,
    FieldFiles,
    field_record,
    resolve_pixel_size,
    split_of_name,
)
from mingraph.common.errors import InputError

__all__ = [
    "DEFAULT_PIXEL_UM",
    "FieldFiles",
    "field_record",
    "resolve_pixel_size",
    "split_of_name",
    "import_field",
    "simulate_dataset",
]


def import_field(
    out: str | Path,
    bse: str | Path | None = None,
    labels: str | Path | None = None,
    eds_mask: str | Path | None = None,
    spectra: str | Path | None = None,
    valid: str | Path | None = None,
    classes: str | Path | None = None,
    pixel_size_um: float | None = None,
    split: str | None = "test",
    name: str | None = None,
    overwrite: bool = False,
    say=None,
    points: str | Path | None = None,
    class_map: str | Path | None = None,
    seed: int = 0,
) -> Path:
    """Import one measured field into the dataset ``out``: a new one-field dataset, or appended
    to ``out`` when it exists (``overwrite`` replaces it instead).

    ``pixel_size_um`` (µm) overrides the spectrum file's own pixel size; when neither exists the
    field gets 1 µm and ``say`` (a callable taking one line, e.g. ``click.echo``) is told so, as it
    is told the spectrum file's calibration and which of its images was taken as BSE.  Class
    names are merged with the dataset's by name (after ``class_map``); ``split=None`` assigns the
    split from a hash of the field's name and ``seed``.
    """
    files = FieldFiles(bse, labels, eds_mask, spectra, points, valid, classes, pixel_size_um, split, name)
    return add_fields(out, [files], overwrite=overwrite, class_map=class_map, seed=seed, say=say)


def simulated_record(tile, tile_id: str, split: str) -> TileRecord:
    """The dataset row of a simulated tile (:func:`mingraph.acquire.simulate.simulate_tile`): its
    BSE, specimen mask and labels, and its EDS as the simulator's seed and parameters."""
    return TileRecord(
        tile_id=tile_id,
        split=split,
        bse=tile.bse,
        valid=tile.valid,
        labels=tile.labels,
        pixel_size_um=float(tile.params["pixel_size_um"]),
        eds_kind="simulated",
        eds_seed=int(tile.seed),
        eds_params=tile.eds_params,
    )


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
            yield simulated_record(t, f"sim-{i:06d}", split or split_of(i, seed))

    meta = {"kind": "simulated", "seed": seed, "tile_size": size, "params": params or {}}
    return write_dataset(out, records(), class_names(), meta=meta, overwrite=overwrite)
