"""A sample: the fields of one specimen (a polished block) and where each lies on the stage.

Three forms are read (:func:`open_sample`):

- a **TIMA job folder**: ``profile.xml`` (or ``configuration/profile.xml``) and one folder per field
  (``bse.png``, ``xray.map[.gz]``, ``pixelmask.png``; :mod:`mingraph.acquire.formats.tima`); the profile's
  ``<Field><dirname>/<dx>/<dy>`` give each field's stage position in mm;
- a **mingraph dataset** (``dataset.json``): stage positions from ``stage_um`` ({tile id: [x, y]}
  in µm, written by :func:`simulate_sample`) or from imported TIMA fields' ``stage_position``;
  without them the fields are laid on a grid in dataset order, touching, and ``positioned`` is False;
- a **manifest CSV** (the columns of ``mingraph import --manifest`` plus ``stage_x_um``,
  ``stage_y_um``): each row a TIMA field folder (``tima``) or a BSE image with point spectra
  (``bse``, ``points``, optionally ``valid``).

Stage positions are field centres; stage x runs along image columns, stage y upwards (against
image rows), as on TIMA.  Every field must have the sample's pixel size.  The sample's pixel grid
has its origin at the top-left of the leftmost and topmost field; :attr:`FieldSpec.origin_px` is
a field's top-left pixel in it.

Where fields overlap, each sample pixel belongs to one field (:func:`owned_mask`): among the
fields that cover it, the one whose centre is nearest (ties: the lower index).  Counting each
pixel, grain and particle only in its owner is what keeps overlaps from being counted twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mingraph.common.errors import InputError

STAGE_COLUMNS = ("stage_x_um", "stage_y_um")


@dataclass(frozen=True)
class FieldSpec:
    """One field of a sample: how to read it and where it lies.

    ``kind``: "tima" (``source`` a TIMA field folder), "dataset" (``source`` the dataset folder,
    ``tile`` its tile id) or "files" (``source`` the BSE image, ``points`` the .npz of measured
    spectra, ``valid`` an optional specimen mask).  ``shape`` (H, W) px; ``origin_px`` (row, col)
    of its top-left pixel in the sample's grid.
    """

    index: int
    name: str
    kind: str
    source: str
    shape: tuple[int, int]
    origin_px: tuple[int, int]
    tile: str | None = None
    points: str | None = None
    valid: str | None = None

    @property
    def centre_px(self) -> tuple[float, float]:
        """(row, col) of the field's centre in the sample's grid, px (float)."""
        return (self.origin_px[0] + self.shape[0] / 2.0, self.origin_px[1] + self.shape[1] / 2.0)


@dataclass
class Sample:
    """A sample's fields (index order), its pixel size (µm) and whether stage positions were known."""

    path: Path
    kind: str  # "tima" | "dataset" | "manifest"
    fields: list[FieldSpec]
    pixel_size_um: float
    positioned: bool
    meta: dict = field(default_factory=dict)

    @property
    def shape_px(self) -> tuple[int, int]:
        """(H, W) of the sample's grid: the bounding box of every field, px."""
        h = max(f.origin_px[0] + f.shape[0] for f in self.fields)
        w = max(f.origin_px[1] + f.shape[1] for f in self.fields)
        return int(h), int(w)


def image_shape(path: str | os.PathLike) -> tuple[int, int]:
    """(H, W) of an image file from its header, without decoding the pixels
    (:func:`mingraph.acquire.formats.images.image_header`: the same reader and size rule as the pixels)."""
    from mingraph.acquire.formats.images import image_header

    shape = image_header(path)[0]
    return int(shape[0]), int(shape[1])


def _layout(
    names: list[str], shapes: list[tuple[int, int]], centres_um: list | None, px: float, where: str
) -> tuple[list[tuple[int, int]], bool]:
    """Top-left (row, col) of each field: from stage centres (µm, y up), else a touching grid."""
    if centres_um is not None and all(c is not None for c in centres_um):
        c = np.asarray(centres_um, dtype=np.float64)
        if not np.all(np.isfinite(c)):
            i = int(np.flatnonzero(~np.isfinite(c).all(1))[0])
            raise InputError(where, f"field {names[i]}", f"stage position {tuple(c[i])} is not a number")
        rows = np.round(-c[:, 1] / px - np.array([s[0] for s in shapes]) / 2.0).astype(np.int64)
        cols = np.round(c[:, 0] / px - np.array([s[1] for s in shapes]) / 2.0).astype(np.int64)
        rows, cols = rows - rows.min(), cols - cols.min()
        return [(int(r), int(q)) for r, q in zip(rows, cols)], True
    n = len(shapes)
    ncol = int(np.ceil(np.sqrt(n)))
    hmax, wmax = max(s[0] for s in shapes), max(s[1] for s in shapes)
    return [((i // ncol) * hmax, (i % ncol) * wmax) for i in range(n)], False


def _specs(kind, names, sources, shapes, origins, **extra) -> list[FieldSpec]:
    return [
        FieldSpec(
            i, names[i], kind, str(sources[i]), shapes[i], origins[i], **{k: v[i] for k, v in extra.items()}
        )
        for i in range(len(names))
    ]


def _tima_job(path: Path) -> Sample:
    from mingraph.acquire.formats.tima import read_profile

    prof_path = next(p for p in (path / "profile.xml", path / "configuration" / "profile.xml") if p.is_file())
    prof = read_profile(prof_path)
    dirs = sorted(
        (d for d in path.iterdir() if (d / "bse.png").is_file()), key=lambda d: (len(d.name), d.name)
    )
    if not dirs:
        raise InputError(path, "fields", "no field folder (a folder holding bse.png) in the TIMA job")
    missing = [d.name for d in dirs if d.name not in prof.fields]
    if missing and len(missing) < len(dirs):
        raise InputError(
            prof_path, f"field {missing[0]}", "no <Field> with this dirname: stage position unknown"
        )
    shapes = [image_shape(d / "bse.png") for d in dirs]
    names = [d.name for d in dirs]
    centres = None if missing else [tuple(v * 1000.0 for v in prof.fields[n]) for n in names]  # mm -> µm
    origins, positioned = _layout(names, shapes, centres, prof.pixel_spacing_um, str(prof_path))
    fields = _specs("tima", names, dirs, shapes, origins)
    return Sample(path, "tima", fields, prof.pixel_spacing_um, positioned, {"profile": str(prof_path)})


def _dataset(path: Path) -> Sample:
    import pyarrow.parquet as pq

    from mingraph.acquire.dataset import open_dataset

    ds = open_dataset(path)
    tab = pq.read_table(ds.path / "tiles.parquet", columns=["tile_id", "height", "width", "pixel_size_um"])
    ids = tab.column("tile_id").to_pylist()
    shapes = list(zip(tab.column("height").to_pylist(), tab.column("width").to_pylist()))
    sizes = np.asarray(tab.column("pixel_size_um").to_pylist(), dtype=np.float64)
    bad = np.flatnonzero(~np.isclose(sizes, sizes[0], rtol=1e-6))
    if bad.size:
        i = int(bad[0])
        raise InputError(
            ds.path / "tiles.parquet",
            f"field {ids[i]}: pixel_size_um",
            f"{sizes[i]:g} µm, but the sample's first field has {sizes[0]:g} µm: one pixel size per sample",
        )
    stage = ds.info.get("stage_um") or {}
    centres: list | None = [stage.get(t) for t in ids]
    if not all(c is not None for c in centres):
        tima = {
            Path(f.get("tima", {}).get("tima_field", "")).name: f["tima"]
            for f in ds.info.get("fields", [])
            if isinstance(f, dict) and isinstance(f.get("tima"), dict)
        }
        pos = [(tima.get(t) or {}).get("stage_position") for t in ids]
        centres = [None if p is None else (p[0] * 1000.0, p[1] * 1000.0) for p in pos]
    origins, positioned = _layout(ids, shapes, centres, float(sizes[0]), str(ds.path / "dataset.json"))
    fields = _specs("dataset", ids, [ds.path] * len(ids), shapes, origins, tile=ids)
    return Sample(ds.path, "dataset", fields, float(sizes[0]), positioned, {"class_names": ds.class_names})


def _manifest(path: Path) -> Sample:
    from mingraph.acquire.collection import read_manifest_table

    files, table = read_manifest_table(path)
    names, sources, shapes, points, valids, centres, sizes = [], [], [], [], [], [], []
    kind = []
    for i, f in enumerate(files):
        where = f"line {table.lines[i]}"
        if f.tima is not None:
            src = Path(f.tima)
            shapes.append(image_shape(src / "bse.png"))
            kind.append("tima")
        elif f.bse is not None and f.points is not None:
            src = Path(f.bse)
            shapes.append(image_shape(src))
            kind.append("files")
        else:
            raise InputError(path, where, "a field needs a TIMA folder (tima) or a BSE image with its points")
        names.append(f.name or src.stem if f.tima is None else f.name or src.name)
        sources.append(src)
        points.append(None if f.points is None else str(f.points))
        valids.append(None if f.valid is None else str(f.valid))
        sizes.append(f.pixel_size_um)
        xy = [table.number(i, c, "a number in µm") for c in STAGE_COLUMNS]
        centres.append(xy if all(v is not None for v in xy) else None)
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InputError(path, "name", f"field name {dup!r} appears twice: names must be unique")
    known = [s for s in sizes if s is not None]
    if not known:
        raise InputError(path, "pixel_size", "no row gives the pixel size (µm) of the sample's fields")
    if any(not np.isclose(s, known[0], rtol=1e-6) for s in known):
        raise InputError(
            path, "pixel_size", f"fields of different pixel sizes {sorted(set(known))}: one per sample"
        )
    origins, positioned = _layout(names, shapes, centres, known[0], str(path))
    fields = [
        FieldSpec(i, names[i], kind[i], str(sources[i]), shapes[i], origins[i], None, points[i], valids[i])
        for i in range(len(names))
    ]
    return Sample(path, "manifest", fields, float(known[0]), positioned)


def open_sample(path: str | os.PathLike) -> Sample:
    """A TIMA job folder, a dataset folder or a manifest CSV as a :class:`Sample`.

    Raises InputError naming the file, the field and what was expected."""
    path = Path(path)
    if path.is_dir() and (path / "dataset.json").is_file():
        return _dataset(path)
    if path.is_dir() and any(
        p.is_file() for p in (path / "profile.xml", path / "configuration" / "profile.xml")
    ):
        return _tima_job(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        return _manifest(path)
    raise InputError(
        path,
        "SAMPLE",
        "expected a TIMA job folder (profile.xml and a folder per field), a mingraph dataset folder "
        "(dataset.json) or a manifest .csv",
    )


def owned_mask(fields: list[FieldSpec], i: int) -> np.ndarray:
    """(H, W) bool: the pixels of field ``i`` that it owns (module docstring), in its own pixel grid."""
    f = fields[i]
    h, w = f.shape
    r0, c0 = f.origin_px
    own = np.ones((h, w), bool)
    ci = f.centre_px
    for g in fields:
        if g.index == i:
            continue
        gr0, gc0 = g.origin_px
        a0, a1 = max(r0, gr0), min(r0 + h, gr0 + g.shape[0])
        b0, b1 = max(c0, gc0), min(c0 + w, gc0 + g.shape[1])
        if a0 >= a1 or b0 >= b1:
            continue
        rr = np.arange(a0, a1, dtype=np.float64)[:, None] + 0.5
        cc = np.arange(b0, b1, dtype=np.float64)[None, :] + 0.5
        cg = g.centre_px
        d_i = (rr - ci[0]) ** 2 + (cc - ci[1]) ** 2
        d_g = (rr - cg[0]) ** 2 + (cc - cg[1]) ** 2
        lost = (d_g < d_i) | ((d_g == d_i) & (g.index < i))
        own[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0] &= ~lost
    return own


def simulate_sample(
    out: str | os.PathLike,
    grid: tuple[int, int] = (3, 4),
    size: int = 128,
    overlap: int = 16,
    seed: int = 0,
    overwrite: bool = False,
    params: dict | None = None,
) -> Path:
    """A simulated sample: one simulated specimen cut into ``grid`` (rows, cols) fields of
    ``size``² px that overlap by ``overlap`` px, as a dataset with stage positions (``stage_um``).

    Each field has its own EDS noise (its own measurement).  Raises InputError for a grid of no
    field, or an overlap not below the field size."""
    from mingraph.acquire.dataset import TileRecord, prepare_output, write_dataset
    from mingraph.acquire.simulate import simulate_tile
    from mingraph.acquire.simulate.minerals import class_names

    rows, cols = int(grid[0]), int(grid[1])
    if rows < 1 or cols < 1:
        raise InputError("--grid", "grid", f"expected at least 1x1 fields, got {rows}x{cols}")
    if not 0 <= overlap < size:
        raise InputError("--overlap", "overlap", f"expected 0 <= overlap < field size {size}, got {overlap}")
    prepare_output(Path(out), overwrite)
    step = size - overlap
    t = simulate_tile(seed, rows * step + overlap, cols * step + overlap, params)
    px = float(t.params["pixel_size_um"])
    stage, recs = {}, []
    for k in range(rows * cols):
        r, c = divmod(k, cols)
        sl = (slice(r * step, r * step + size), slice(c * step, c * step + size))
        name = f"field-{k:03d}"
        stage[name] = [(c * step + size / 2.0) * px, -(r * step + size / 2.0) * px]
        recs.append(
            TileRecord(
                tile_id=name,
                split="test",
                bse=t.bse[sl],
                valid=t.valid[sl],
                labels=t.labels[sl],
                pixel_size_um=px,
                eds_kind="simulated",
                eds_seed=int(np.random.SeedSequence([seed, k]).generate_state(1)[0]),
                eds_params=t.eds_params,
            )
        )
    meta = {
        "kind": "simulated-sample",
        "seed": seed,
        "grid": [rows, cols],
        "overlap_px": overlap,
        "stage_um": stage,
    }
    return write_dataset(out, recs, class_names(), meta=meta, overwrite=overwrite)
