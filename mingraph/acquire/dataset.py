"""Raw datasets on disk: tiles (BSE, masks, labels, EDS reference) in Parquet with a versioned schema.

A dataset is a folder holding ``dataset.json`` (schema version, producer, class names, splits)
and ``tiles.parquet`` (one row per tile).  Simulated spectra are not stored: a tile stores its
seed and the simulator parameters, and its EDS source regenerates spectra on demand.  Measured
spectrum images are stored beside it as ``spectra/<tile>.npy`` (memory-mapped when read).
Writing goes to a temporary folder that is renamed into place, so a dataset is whole or absent.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mingraph.acquire.fields import N_CHANNELS, DenseSpectrumImage, Field, NoSpectra, bse_from_u16, bse_to_u16
from mingraph.common.errors import InputError
from mingraph.common.outputs import atomic_folder, check_new_output
from mingraph.version import __version__

SCHEMA_VERSION = 1
FORMAT = "mingraph-dataset"
SPLITS = ("train", "val", "test")
EDS_KINDS = ("simulated", "dense", "points", "none")

TILE_SCHEMA = pa.schema(
    [
        ("tile_id", pa.string()),
        ("split", pa.string()),
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("pixel_size_um", pa.float64()),
        ("bse", pa.binary()),  # uint16 little-endian, BSE * 65535
        ("valid", pa.binary()),  # np.packbits of the bool mask
        ("labels", pa.binary()),  # int16 (or int32 when an id >= 32768: 4 bytes a pixel) LE; -1 = unknown
        ("eds_mask", pa.binary()),  # packbits of where EDS was measured; empty if unknown
        ("eds_kind", pa.string()),  # "simulated" | "dense" | "points" | "none"
        ("eds_seed", pa.int64()),
        ("eds_params", pa.string()),  # JSON
        ("eds_path", pa.string()),  # relative path of a dense spectrum image (.npy) or points (.npz), or ""
    ],
    metadata={b"format": FORMAT.encode(), b"schema_version": str(SCHEMA_VERSION).encode()},
)


@dataclass
class TileRecord:
    """One tile as stored: arrays plus a reference to its EDS source."""

    tile_id: str
    split: str
    bse: np.ndarray  # float (H, W) in [0, 1]
    valid: np.ndarray  # bool (H, W)
    labels: np.ndarray | None = None  # int (H, W), -1 = unknown
    eds_mask: np.ndarray | None = None  # bool (H, W)
    pixel_size_um: float = 1.0
    eds_kind: str = "none"
    eds_seed: int = 0
    eds_params: dict = field(default_factory=dict)
    spectra: np.ndarray | None = None  # (H, W, 3000) for "dense"; (n, 3000) for "points"
    eds_rc: np.ndarray | None = None  # (n, 2) row, col of the measured spectra for "points"
    spectra_file: Path | None = None  # a .npy holding exactly ``spectra`` (memory-mapped), if any


def split_of(index: int, seed: int = 0) -> str:
    """Deterministic 80/10/10 split of tile ``index``: a hash of (seed, index), stable as N grows."""
    u = np.random.default_rng([seed, index, 0x5EED]).random()
    return "train" if u < 0.8 else ("val" if u < 0.9 else "test")


def label_bytes(labels: np.ndarray) -> bytes:
    """Class ids stored exactly: int16 little-endian when every id fits (< 32768), else int32.

    The width is read back from the blob's length (2 or 4 bytes a pixel).  Never a narrowing cast
    without a range check: ids outside int32 raise InputError.
    """
    a = np.asarray(labels)
    if not a.size:
        return a.astype("<i2").tobytes()
    lo, hi = int(a.min()), int(a.max())
    if lo >= -32768 and hi <= 32767:
        return a.astype("<i2").tobytes()
    if lo < -(2**31) or hi > 2**31 - 1:
        raise InputError("labels", "class ids", f"ids must fit 32 bits, got [{lo}, {hi}]")
    return a.astype("<i4").tobytes()


def labels_from_bytes(blob: bytes, h: int, w: int, source: str) -> np.ndarray:
    """Inverse of :func:`label_bytes`: int32 (h, w) class ids."""
    width = len(blob) // max(h * w, 1)
    if width not in (2, 4) or width * h * w != len(blob):
        raise InputError(source, "labels", f"{len(blob)} bytes do not hold {h}x{w} int16 or int32 ids")
    return np.frombuffer(blob, dtype="<i2" if width == 2 else "<i4").reshape(h, w).astype(np.int32)


def encode_record(rec: TileRecord, eds_path: str) -> dict:
    h, w = rec.bse.shape
    bse16 = bse_to_u16(rec.bse)
    return {
        "tile_id": rec.tile_id,
        "split": rec.split,
        "height": h,
        "width": w,
        "pixel_size_um": float(rec.pixel_size_um),
        "bse": bse16.tobytes(),
        "valid": np.packbits(rec.valid.astype(bool), axis=None).tobytes(),
        "labels": b"" if rec.labels is None else label_bytes(rec.labels),
        "eds_mask": b""
        if rec.eds_mask is None
        else np.packbits(rec.eds_mask.astype(bool), axis=None).tobytes(),
        "eds_kind": rec.eds_kind,
        "eds_seed": int(rec.eds_seed),
        "eds_params": json.dumps(rec.eds_params, sort_keys=True),
        "eds_path": eds_path,
    }


def check_record(rec: TileRecord, n_classes: int) -> None:
    src = f"tile {rec.tile_id}"
    if rec.split not in SPLITS:
        raise InputError(src, "split", f"expected one of {SPLITS}, got {rec.split!r}")
    if rec.bse.ndim != 2 or rec.bse.size == 0:
        raise InputError(src, "bse", f"expected a non-empty 2-D image, got shape {rec.bse.shape}")
    for name in ("valid", "labels", "eds_mask"):
        a = getattr(rec, name)
        if a is not None and a.shape != rec.bse.shape:
            raise InputError(src, name, f"shape {a.shape} differs from the BSE image {rec.bse.shape}")
    if (
        rec.labels is not None
        and rec.labels.size
        and (rec.labels.min() < -1 or rec.labels.max() >= n_classes)
    ):
        raise InputError(src, "labels", f"class ids must lie in [-1, {n_classes - 1}]")
    if rec.eds_kind not in EDS_KINDS:
        raise InputError(src, "eds_kind", f"expected one of {EDS_KINDS}, got {rec.eds_kind!r}")
    if rec.eds_kind == "points":
        from mingraph.acquire.formats.points import check_measured

        n = 0 if rec.eds_rc is None else rec.eds_rc.shape[0]
        if rec.eds_rc is None or rec.spectra is None or rec.spectra.shape != (n, N_CHANNELS):
            got = None if rec.spectra is None else rec.spectra.shape
            raise InputError(src, "spectra", f"expected ({n}, {N_CHANNELS}) point spectra, got {got}")
        check_measured(rec.eds_rc, rec.bse.shape, src)
    if rec.eds_kind == "dense":
        if rec.spectra is None or rec.spectra.shape != (*rec.bse.shape, N_CHANNELS):
            got = None if rec.spectra is None else rec.spectra.shape
            raise InputError(src, "spectra", f"expected shape {(*rec.bse.shape, N_CHANNELS)}, got {got}")


def store_eds(folder: Path, rec: TileRecord, index: int) -> str:
    """Write a record's measured spectra into ``folder``; return their relative path (or "")."""
    if rec.eds_kind == "dense":
        path = f"spectra/{index:06d}.npy"
        (folder / "spectra").mkdir(exist_ok=True)
        src = rec.spectra_file  # the .npy a lazy import wrote: linked, not rewritten
        if src is not None and _stored_counts(rec.spectra[:0]).dtype == rec.spectra.dtype:
            try:
                os.link(src, folder / path)
            except OSError:
                shutil.copyfile(src, folder / path)
        else:
            np.save(folder / path, _stored_counts(rec.spectra))
        return path
    if rec.eds_kind == "points":
        from mingraph.acquire.formats.points import save_points

        path = f"points/{index:06d}.npz"
        (folder / "points").mkdir(exist_ok=True)
        save_points(folder / path, rec.eds_rc, rec.spectra)
        return path
    return ""


def _stored_counts(spectra: np.ndarray) -> np.ndarray:
    """Spectra as stored: unsigned integer counts keep their dtype (uint8/16/32), others float32."""
    a = np.asarray(spectra)
    if a.dtype.kind == "u":
        return np.ascontiguousarray(a)
    if a.dtype != np.float32:  # a narrowing cast: checked against float32's range first
        from mingraph.acquire.fields import check_counts

        check_counts(a, "dataset", "spectra")
    return np.ascontiguousarray(a, dtype=np.float32)


def _check_lengths(row: dict, source: str) -> None:
    """The declared height x width against the bytes each image column holds (a row cut short
    would otherwise be zero-padded, or raise a bare reshape error)."""
    h, w = row["height"], row["width"]
    if h is None or w is None or h < 1 or w < 1:
        raise InputError(source, "height, width", f"expected positive sizes, got {h} x {w}")
    n = h * w
    want = {"bse": 2 * n, "valid": (n + 7) // 8}
    if row["eds_mask"]:
        want["eds_mask"] = (n + 7) // 8
    for key, size in want.items():
        if len(row[key] or b"") != size:
            raise InputError(
                source, key, f"{len(row[key] or b'')} bytes stored, {size} expected for {h} x {w} pixels"
            )


def prepare_output(out: Path, overwrite: bool) -> None:
    """Refuse an existing output unless ``overwrite`` (and then one mingraph may not replace:
    :mod:`mingraph.common.outputs`); the caller then writes atomically."""
    check_new_output(out, overwrite, "output")


def write_dataset(
    out: str | os.PathLike,
    records: Iterable[TileRecord],
    class_names: list[str],
    meta: dict | None = None,
    overwrite: bool = False,
    rows_per_group: int = 64,
) -> Path:
    """Write tiles to ``out`` atomically (temporary folder, then rename); return the path."""
    out = Path(out)
    with atomic_folder(out, overwrite, kind="dataset") as tmp:
        counts = {s: 0 for s in SPLITS}
        ids: set[str] = set()
        writer = pq.ParquetWriter(tmp / "tiles.parquet", TILE_SCHEMA, compression="zstd")
        rows: list[dict] = []
        try:
            for rec in records:
                check_record(rec, len(class_names))
                if rec.tile_id in ids:
                    raise InputError(f"tile {rec.tile_id}", "tile_id", "duplicate tile id")
                ids.add(rec.tile_id)
                rows.append(encode_record(rec, store_eds(tmp, rec, len(ids) - 1)))
                counts[rec.split] += 1
                if len(rows) >= rows_per_group:
                    writer.write_table(pa.Table.from_pylist(rows, schema=TILE_SCHEMA))
                    rows = []
            if rows:
                writer.write_table(pa.Table.from_pylist(rows, schema=TILE_SCHEMA))
        finally:
            writer.close()
        info = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "producer": f"mingraph {__version__}",
            "class_names": list(class_names),
            "n_tiles": sum(counts.values()),
            "splits": counts,
            **(meta or {}),
        }
        (tmp / "dataset.json").write_text(json.dumps(info, indent=2))
    return out


class Dataset:
    """A raw dataset opened for reading; ``sample(i)`` rebuilds tile i with its EDS source."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        info_path = self.path / "dataset.json"
        if not info_path.is_file():
            raise InputError(self.path, "dataset.json", "missing: not a mingraph dataset folder")
        try:
            self.info = json.loads(info_path.read_text())
        except json.JSONDecodeError as e:
            raise InputError(info_path, "json", f"unreadable ({e})") from None
        if self.info.get("format") != FORMAT:
            raise InputError(info_path, "format", f"expected {FORMAT!r}, got {self.info.get('format')!r}")
        if self.info.get("schema_version") != SCHEMA_VERSION:
            raise InputError(
                info_path,
                "schema_version",
                f"expected {SCHEMA_VERSION}, got {self.info.get('schema_version')}",
            )
        try:
            self._file = pq.ParquetFile(self.path / "tiles.parquet")
        except (OSError, pa.ArrowException) as e:
            raise InputError(self.path / "tiles.parquet", "parquet", f"unreadable ({e})") from None
        if not self._file.schema_arrow.equals(TILE_SCHEMA, check_metadata=False):
            raise InputError(
                self.path / "tiles.parquet", "schema", "columns differ from the mingraph tile schema"
            )
        index = self._file.read(columns=["tile_id", "split"])
        self.tile_ids: list[str] = index.column("tile_id").to_pylist()
        self.splits: list[str] = index.column("split").to_pylist()
        if len(self.tile_ids) != self.info.get("n_tiles"):
            raise InputError(
                self.path / "tiles.parquet",
                "rows",
                f"{len(self.tile_ids)} tiles, dataset.json says {self.info.get('n_tiles')}",
            )
        self._group_starts = np.cumsum(
            [0] + [self._file.metadata.row_group(g).num_rows for g in range(self._file.num_row_groups)]
        )
        self._cache: tuple[int, list[dict]] | None = None

    @property
    def class_names(self) -> list[str]:
        return list(self.info["class_names"])

    def __len__(self) -> int:
        return len(self.tile_ids)

    def indices(self, split: str | None = None) -> list[int]:
        """Tile indices of one split (all tiles when ``split`` is None)."""
        if split is not None and split not in SPLITS:
            raise InputError(self.path, "split", f"expected one of {SPLITS}, got {split!r}")
        return [i for i, s in enumerate(self.splits) if split is None or s == split]

    def find(self, tile: str | int) -> int:
        """Index of a tile given by id, or by index (as int or digits)."""
        if isinstance(tile, str) and tile in self.tile_ids:
            return self.tile_ids.index(tile)
        if isinstance(tile, int) or (isinstance(tile, str) and tile.isdigit()):
            if 0 <= int(tile) < len(self):
                return int(tile)
        raise InputError(
            self.path,
            "tile",
            f"no tile {tile!r} (ids like {self.tile_ids[0]!r}, or an index below {len(self)})",
        )

    def eds_params(self, i: int) -> dict:
        """Field ``i``'s EDS settings as stored (for a measured field, ``instrument``: the beam,
        take-off and FWHM its spectrum file stated), without decoding its images."""
        return json.loads(self._row(i)["eds_params"] or "{}")

    def _row(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(f"tile index {i} out of range for {len(self)} tiles")
        g = int(np.searchsorted(self._group_starts, i, side="right") - 1)
        if self._cache is None or self._cache[0] != g:
            self._cache = (g, self._file.read_row_group(g).to_pylist())
        return self._cache[1][i - self._group_starts[g]]

    def field(self, i: int) -> Field:
        """Tile ``i`` as a Field, its EDS source rebuilt from the stored reference."""
        r = self._row(i)
        h, w, n = r["height"], r["width"], r["height"] * r["width"]
        src = f"{self.path}/tiles.parquet[{r['tile_id']}]"
        _check_lengths(r, src)
        bse = bse_from_u16(np.frombuffer(r["bse"], dtype="<u2").reshape(h, w))
        valid = np.unpackbits(np.frombuffer(r["valid"], np.uint8), count=n).reshape(h, w).astype(bool)
        labels = labels_from_bytes(r["labels"], h, w, src) if r["labels"] else None
        eds_mask = (
            np.unpackbits(np.frombuffer(r["eds_mask"], np.uint8), count=n).reshape(h, w).astype(bool)
            if r["eds_mask"]
            else None
        )
        params = json.loads(r["eds_params"])
        if r["eds_kind"] == "simulated":
            from mingraph.acquire.simulate.eds import SimulatedEds

            eds = SimulatedEds(labels, r["eds_seed"], params)
        elif r["eds_kind"] == "dense":
            eds = DenseSpectrumImage(
                np.load(self.path / r["eds_path"], mmap_mode="r"),
                source=str(self.path / r["eds_path"]),
                checked=True,
            )
        elif r["eds_kind"] == "points":
            from mingraph.acquire.formats.points import load_points

            eds = load_points(self.path / r["eds_path"], (h, w), str(self.path / r["eds_path"]))
        else:
            eds = NoSpectra(src)
        return Field(
            bse,
            valid,
            labels,
            self.class_names,
            r["pixel_size_um"],
            eds,
            name=r["tile_id"],
            eds_mask=eds_mask,
            meta={"split": r["split"], "eds_params": params, "eds_seed": r["eds_seed"]},
        )

    def __iter__(self) -> Iterator[Field]:
        for i in range(len(self)):
            yield self.field(i)


def open_dataset(path: str | os.PathLike) -> Dataset:
    """Open a dataset folder, validating its schema version and files."""
    return Dataset(path)
