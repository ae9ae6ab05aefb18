"""A predict-sample output as one stitched mosaic at full resolution, read lazily: Dask arrays
whose blocks read the fields they cover (``fields/<name>/phase_map.tif``, ``confidence.tif``,
``bse.tif``) when napari draws them.  Each mosaic pixel shows the field that owns it
(:func:`mingraph.acquire.sample.owned_mask`: the nearest field centre), as the overview does."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from mingraph.acquire.sample import FieldSpec, owned_mask
from mingraph.common.errors import InputError

CHUNK = 2048


def read_fields(run: Path) -> list[FieldSpec]:
    """The fields of a predict-sample run (fields/<name>/field.json, in run.json's order)."""
    names = json.loads((run / "run.json").read_text())["fields"]
    out = []
    for i, name in enumerate(names):
        p = run / "fields" / name / "field.json"
        if not p.is_file():
            raise InputError(
                p.parent, "field.json", "missing: the field was not predicted (run predict-sample again)"
            )
        d = json.loads(p.read_text())
        out.append(FieldSpec(i, name, "files", str(p.parent), tuple(d["shape_px"]), tuple(d["origin_px"])))
    return out


class LazyMosaic:
    """The mosaic of one per-field image (``what``: phase_map.tif, confidence.tif or bse.tif)."""

    def __init__(self, run: Path, fields: list[FieldSpec], shape: tuple[int, int], what: str, fill, dtype):
        self.run, self.fields, self.shape, self.what = run, fields, tuple(shape), what
        self.fill, self.dtype = fill, np.dtype(dtype)
        self._read = functools.lru_cache(maxsize=16)(self._read_field)
        self._own = functools.lru_cache(maxsize=64)(lambda i: owned_mask(self.fields, i))

    def _read_field(self, i: int) -> np.ndarray:
        import tifffile

        return tifffile.imread(Path(self.fields[i].source) / self.what)

    def block(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Mosaic pixels [r0:r1, c0:c1]."""
        out = np.full((r1 - r0, c1 - c0), self.fill, self.dtype)
        for f in self.fields:
            (fr, fc), (h, w) = f.origin_px, f.shape
            a0, a1, b0, b1 = max(r0, fr), min(r1, fr + h), max(c0, fc), min(c1, fc + w)
            if a0 >= a1 or b0 >= b1:
                continue
            img, own = self._read(f.index), self._own(f.index)
            src = (slice(a0 - fr, a1 - fr), slice(b0 - fc, b1 - fc))
            dst = out[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0]
            dst[own[src]] = img[src][own[src]]
        return out

    def dask(self, chunk: int = CHUNK):
        import dask.array as da

        def one(block_info=None):
            (r0, r1), (c0, c1) = block_info[None]["array-location"]
            return self.block(r0, r1, c0, c1)

        chunks = tuple(tuple(min(chunk, n - k) for k in range(0, n, chunk)) for n in self.shape)
        return da.map_blocks(one, chunks=chunks, dtype=self.dtype, meta=np.empty((0, 0), self.dtype))


def sample_scene(run: Path):
    """The :class:`~mingraph.view.scene.Scene` of a predict-sample output: its lazy mosaic."""
    from mingraph.view.scene import Layer, Scene, field_layers, min_confidence_of, palette_legend, point_layer

    fields = read_fields(run)
    summary = json.loads((run / "sample" / "summary.json").read_text())["summary"]
    shape, px = tuple(summary["field_px"]), float(summary["pixel_size_um"])
    names = sample_class_names(run)
    names_by_id, colours, none = palette_legend(Path(fields[0].source) / "phase_map.tif", names)
    phase = LazyMosaic(run, fields, shape, "phase_map.tif", none, np.uint8 if none == 255 else np.uint16)
    conf = LazyMosaic(run, fields, shape, "confidence.tif", 0.0, np.float32)
    layers = []
    if all((Path(f.source) / "bse.tif").is_file() for f in fields):
        bse = LazyMosaic(run, fields, shape, "bse.tif", 0, np.uint16).dask()
        layers.append(Layer("image", "BSE", bse, (px, px), contrast=(0, 65535)))
    mc = min_confidence_of(run / "sample")
    layers += field_layers(phase.dask(), conf.dask(), names_by_id, colours, none, px, mc)
    table, reader = sample_points(run, fields)
    if table is not None:
        layers.append(point_layer(table, names_by_id, colours, px))
    return Scene(run, "sample", px, layers, reader)


def sample_class_names(run: Path) -> list[str]:
    """The class names of a sample's results, in class-id order (sample/mineralogy/modal.csv)."""
    import pandas as pd

    p = run / "sample" / "mineralogy" / "modal.csv"
    if not p.is_file():
        raise InputError(
            run / "sample", "mineralogy/modal.csv", "missing: run predict-sample again to finish the sample"
        )
    from mingraph.common.escapes import csv_uncell

    df = pd.read_csv(p, keep_default_na=False, dtype={"phase": str}).sort_values("class_id")
    return [csv_uncell(n) for n in df["phase"]]


def sample_points(run: Path, fields: list[FieldSpec]):
    """(points table in mosaic pixels, its spectra reader) of the fields' points.csv, each point
    kept by the field that owns its pixel; (None, None) when the fields stored no points."""
    from mingraph.view.scene import read_points_table
    from mingraph.view.spectra import PointSpectraReader

    if not all((Path(f.source) / "points.csv").is_file() for f in fields):
        return None, None
    parts, files, file_of, local = [], [], [], []
    for f in fields:
        t = read_points_table(Path(f.source) / "points.csv")
        r, c = t["row"].astype(np.int64), t["col"].astype(np.int64)
        keep = owned_mask(fields, f.index)[r, c] if len(r) else np.zeros(0, bool)
        t = {k: v[keep] for k, v in t.items()}
        t["row"], t["col"] = t["row"] + f.origin_px[0], t["col"] + f.origin_px[1]
        parts.append(t)
        npz = Path(f.source) / "points.npz"
        k = len(files)
        files.append(npz)
        file_of.append(np.full(int(keep.sum()), k if npz.is_file() else -1))
        local.append(np.flatnonzero(keep))
    cols = [c for c in parts[0] if all(c in p for p in parts)]
    table = {c: np.concatenate([p[c] for p in parts]) for c in cols}
    reader = PointSpectraReader(
        files, np.concatenate(file_of), np.concatenate(local), [str(m) for m in table["mineral"]]
    )
    return table, reader
