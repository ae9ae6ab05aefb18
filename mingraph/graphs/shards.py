"""Graph shards: precomputed compact graphs (one row per tile × EDS fraction × draw) in Arrow IPC files.

Shards are uncompressed Arrow IPC files, so they memory-map: array columns are binary blobs that
``np.frombuffer`` views without copying.  A shard stores the compact form (docs/method.md,
"Compact form"): BSE, masks, labels, EDS positions, Delaunay edges and either the EDS points'
features (an encoder's 64-value embeddings, or the physics classifier's class probabilities with
``--classifier physics``: :mod:`mingraph.graphs.point_features`) or the sampled spectra as sparse
(channel, count) lists.  The per-pixel nearest-EDS map is derived
from the EDS positions on read (it is cheaper to recompute than to store).  Each shard's
metadata records the schema version, producer and a digest of the job that made it, so a
re-run skips shards that are complete and current, and the reader refuses foreign files; a shard
built with ``--classifier`` also records its point features (``point_features``: the classifier,
its class names, the feature width, the physics' calibrations).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from mingraph.acquire.fields import N_CHANNELS, bse_from_u16, bse_to_u16
from mingraph.common.errors import InputError
from mingraph.common.files import atomic_file
from mingraph.graphs.point_features import features_record, implied_record
from mingraph.graphs.structure import StructuredGraph, build_structured_graph
from mingraph.version import __version__

FORMAT = "mingraph-shard"
SCHEMA_VERSION = 2

SHARD_SCHEMA = pa.schema(
    [
        ("tile_id", pa.string()),
        ("tile_index", pa.int32()),
        ("split", pa.string()),
        ("fraction", pa.float64()),
        ("draw", pa.int32()),
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("bse", pa.binary()),  # uint16 (H, W), BSE * 65535
        ("valid", pa.binary()),  # packbits (H, W)
        ("labels", pa.binary()),  # int8 (H, W) when every id < 128, else int16 or int32 (label_bytes)
        ("label_bytes", pa.int8()),  # 1, 2 or 4: the width of the labels and eds_labels integers
        ("eds_rc", pa.binary()),  # int32 (n, 2)
        ("eds_labels", pa.binary()),  # int8/int16 (n,) or empty
        ("delaunay", pa.binary()),  # int32 (m, 2)
        ("embedding", pa.binary()),  # float32 (n, feature width: 64, or the physics' classes + 1) or empty
        ("spec_ptr", pa.binary()),  # int32 (n + 1,) CSR pointers into the two lists below, or empty
        ("spec_channel", pa.binary()),  # uint16 (nnz,)
        ("spec_count", pa.binary()),  # uint32 (nnz,)
    ]
)


@dataclass
class ShardJob:
    """What one shard holds: these tiles, each at every fraction × draw, sampled and embedded so."""

    name: str
    tile_indices: list[int]
    fractions: list[float]
    draws: int
    pattern: str
    seed: int
    lift: float
    encoder_digest: str | None
    dataset_digest: str
    class_names: list[str]
    convention: str = "paper"  # graph convention (graphs/conventions.py)
    point_classifier: dict | None = None  # --classifier (graphs/point_features.py); None: not given

    def record(self) -> dict:
        """The job as the shard's metadata stores it (without ``point_classifier`` where no
        ``--classifier`` was given, so such shards are as they were before the option)."""
        d = dict(self.__dict__)
        if d.get("point_classifier") is None:
            d.pop("point_classifier", None)
        return d

    def digest(self) -> str:
        d = self.record()
        if d.get("convention") == "paper":  # the default leaves digests of earlier shards as they were
            d.pop("convention")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _blob(a: np.ndarray | None, dtype: str) -> bytes:
    return b"" if a is None else np.ascontiguousarray(a, dtype=dtype).tobytes()


def sparse_spectra(spectra: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR form (ptr, channel, count) of integer count spectra; refuses non-integer counts."""
    s = np.asarray(spectra)
    if s.size and not np.array_equal(s, np.round(s)):
        raise InputError("build-graphs", "spectra", "counts must be whole numbers to be stored sparsely")
    if s.size and (s.min() < 0 or s.max() > np.iinfo(np.uint32).max):  # stored as uint32: never wrapped
        raise InputError(
            "build-graphs",
            "spectra",
            f"counts must lie in [0, 2**32 - 1] to be stored, got [{s.min()}, {s.max()}]",
        )
    rows, chans = np.nonzero(s)
    if rows.size > np.iinfo(np.int32).max:
        raise InputError("build-graphs", "spectra", f"{rows.size} non-zero counts exceed a shard's 2**31 - 1")
    ptr = np.zeros(s.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=s.shape[0]), out=ptr[1:])
    return ptr.astype(np.int32), chans.astype(np.uint16), s[rows, chans].astype(np.uint32)


def dense_spectra(ptr: np.ndarray, chan: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Inverse of :func:`sparse_spectra`: (n, 3000) float32 counts."""
    n = ptr.size - 1
    out = np.zeros((n, N_CHANNELS), np.float32)
    rows = np.repeat(np.arange(n), np.diff(ptr))
    out[rows, chan.astype(np.int64)] = count
    return out


def label_width(*labels: np.ndarray | None) -> int:
    """Bytes per class id that hold every id exactly (1, 2 or 4; ids are >= -1); never narrowed."""
    hi = max((int(a.max()) for a in labels if a is not None and a.size), default=0)
    if hi >= 2**31:
        raise InputError("build-graphs", "labels", f"class id {hi} does not fit 32 bits")
    return 1 if hi < 128 else (2 if hi < 32768 else 4)


def encode_row(
    tile_id: str,
    tile_index: int,
    split: str,
    fraction: float,
    draw: int,
    g: StructuredGraph,
    valid: np.ndarray,
    spectra: np.ndarray | None,
) -> dict:
    """One shard row from a structured graph (embeddings in ``g.eds_feat`` unless ``spectra`` given)."""
    sp = sparse_spectra(spectra) if spectra is not None else (None, None, None)
    nbytes = label_width(g.labels, g.eds_labels)
    lab_t = {1: "i1", 2: "<i2", 4: "<i4"}[nbytes]
    return {
        "tile_id": tile_id,
        "tile_index": tile_index,
        "split": split,
        "fraction": float(fraction),
        "draw": int(draw),
        "height": g.height,
        "width": g.width,
        "bse": _blob(bse_to_u16(g.bse), "<u2"),
        "valid": np.packbits(valid.astype(bool), axis=None).tobytes(),
        "labels": _blob(g.labels, lab_t),
        "label_bytes": nbytes,
        "eds_rc": _blob(g.eds_rc, "<i4"),
        "eds_labels": _blob(g.eds_labels, lab_t),
        "delaunay": _blob(g.delaunay, "<i4"),
        "embedding": _blob(g.eds_feat, "<f4") if spectra is None else b"",
        "spec_ptr": _blob(sp[0], "<i4"),
        "spec_channel": _blob(sp[1], "<u2"),
        "spec_count": _blob(sp[2], "<u4"),
    }


def write_shard(path: Path, rows: list[dict], job: ShardJob, calibrations: list | None = None) -> Path:
    """Write one shard atomically (temporary name, then rename) with its job in the metadata, and
    its point features' record (:func:`~mingraph.graphs.point_features.features_record`, with
    ``calibrations``: the physics' fit of each row) where the job names a ``--classifier``."""
    meta = {
        b"format": FORMAT.encode(),
        b"schema_version": str(SCHEMA_VERSION).encode(),
        b"producer": f"mingraph {__version__}".encode(),
        b"job": json.dumps(job.record(), sort_keys=True).encode(),
        b"job_digest": job.digest().encode(),
        b"n_graphs": str(len(rows)).encode(),
    }
    if job.point_classifier is not None:
        rec = features_record(job.point_classifier, calibrations)
        meta[b"point_features"] = json.dumps(rec, sort_keys=True, allow_nan=False).encode()
    table = pa.Table.from_pylist(rows, schema=SHARD_SCHEMA.with_metadata(meta))
    with (
        atomic_file(path) as tmp,
        pa.OSFile(str(tmp), "wb") as sink,
        pa.ipc.new_file(sink, table.schema) as writer,
    ):
        writer.write_table(table, max_chunksize=64)
    return path


class Shard:
    """A memory-mapped shard; ``graph(i)`` rebuilds the i-th structured graph."""

    def __init__(self, path: str | os.PathLike, lift: float | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(self.path, "shard", "file not found")
        try:
            self._source = pa.memory_map(str(self.path), "r")
            self.table = pa.ipc.open_file(self._source).read_all()
        except (pa.ArrowInvalid, OSError) as e:
            raise InputError(
                self.path, "shard", f"not a readable Arrow IPC file (truncated or foreign?): {e}"
            ) from None
        meta = self.table.schema.metadata or {}
        if meta.get(b"format") != FORMAT.encode():
            raise InputError(
                self.path,
                "format",
                f"expected a {FORMAT} file, got {meta.get(b'format', b'no format tag').decode()}",
            )
        if meta.get(b"schema_version") != str(SCHEMA_VERSION).encode():
            raise InputError(
                self.path,
                "schema_version",
                f"expected {SCHEMA_VERSION}, got {meta.get(b'schema_version', b'?').decode()}",
            )
        if not self.table.schema.remove_metadata().equals(SHARD_SCHEMA):
            raise InputError(self.path, "schema", "columns differ from the mingraph shard schema")
        if int(meta.get(b"n_graphs", b"-1")) != self.table.num_rows:
            raise InputError(
                self.path,
                "rows",
                f"{self.table.num_rows} graphs, metadata says {meta.get(b'n_graphs', b'?').decode()}",
            )
        from mingraph.graphs.shard_check import check_body, check_features

        check_body(self.table, self.path)
        self.job = json.loads(meta[b"job"])
        if b"point_features" in meta:
            try:
                rec = json.loads(meta[b"point_features"])
            except ValueError:
                raise InputError(
                    self.path, "point_features", "expected a JSON object, got unreadable text"
                ) from None
            self.point_features = check_features(self.table, rec, self.path)
        elif self.job.get("point_classifier") is not None:
            raise InputError(
                self.path,
                "point_features",
                "missing: the job names a --classifier but its features are not recorded",
            )
        else:
            self.point_features = implied_record(self.job)
        self.job_digest = meta[b"job_digest"].decode()
        self.lift = float(self.job["lift"] if lift is None else lift)
        self.convention = self.job.get("convention", "paper")
        self._cols = {name: self.table.column(name) for name in SHARD_SCHEMA.names}

    def __len__(self) -> int:
        return self.table.num_rows

    def _get(self, name: str, i: int):
        return (
            self._cols[name][i].as_py()
            if name
            in ("tile_id", "split", "fraction", "draw", "height", "width", "tile_index", "label_bytes")
            else self._cols[name][i].as_buffer()
        )

    def _arr(self, name: str, i: int, dtype: str, shape: tuple | None = None) -> np.ndarray | None:
        buf = self._get(name, i)
        if buf is None or buf.size == 0:
            return None
        a = np.frombuffer(buf, dtype=dtype)
        return a.reshape(shape) if shape is not None else a

    def info(self, i: int) -> dict:
        """Scalar fields of row i (tile id, split, fraction, draw, size)."""
        return {
            k: self._get(k, i)
            for k in ("tile_id", "tile_index", "split", "fraction", "draw", "height", "width")
        }

    def spectra(self, i: int) -> np.ndarray | None:
        """Raw sampled spectra of row i (n, 3000), or None when the shard stores embeddings."""
        ptr = self._arr("spec_ptr", i, "<i4")
        if ptr is None:
            return None
        chan = self._arr("spec_channel", i, "<u2")
        cnt = self._arr("spec_count", i, "<u4")
        return dense_spectra(
            ptr,
            np.zeros(0, np.uint16) if chan is None else chan,
            np.zeros(0, np.uint32) if cnt is None else cnt,
        )

    def graph(
        self, i: int, eds_feat: np.ndarray | None = None, eds_edges: str = "delaunay", k: int = 6
    ) -> StructuredGraph:
        """Row i as a structured graph; features are the stored embeddings unless ``eds_feat`` is given.

        ``eds_edges="knn"`` links the EDS nodes by their k nearest neighbours instead of the
        stored Delaunay edges (the ablation trains on the same shards).
        """
        if eds_edges != "delaunay" and self.convention != "paper":
            raise InputError(
                self.path, "convention", f"{self.convention} graphs link EDS nodes by Delaunay only"
            )
        h, w = self._get("height", i), self._get("width", i)
        rc = self._arr("eds_rc", i, "<i4", (-1, 2))
        rc = np.zeros((0, 2), np.int32) if rc is None else rc
        n = rc.shape[0]
        if eds_feat is None:
            emb = self._arr("embedding", i, "<f4")
            if emb is None and n:
                raise InputError(
                    self.path, "embedding", "this shard stores raw spectra: give an encoder to embed them"
                )
            width = self.point_features["feature_width"]
            eds_feat = np.zeros((n, width), np.float32) if emb is None else emb.reshape(n, -1)
        bse = bse_from_u16(self._arr("bse", i, "<u2", (h, w)))
        g = build_structured_graph(
            bse, rc, eds_feat, lift=self.lift, eds_edges=eds_edges, k=k, convention=self.convention
        )
        if eds_edges == "delaunay" and self.convention == "paper":  # "authors" graphs are rebuilt exactly
            stored = self._arr("delaunay", i, "<i4", (-1, 2))
            g.delaunay = np.zeros((0, 2), np.int32) if stored is None else stored
        valid = (
            np.unpackbits(np.frombuffer(self._get("valid", i), np.uint8), count=h * w)
            .reshape(h, w)
            .astype(bool)
        )
        lab_t = {1: "i1", 2: "<i2", 4: "<i4"}[self._get("label_bytes", i)]
        lab = self._arr("labels", i, lab_t, (h, w))
        g.labels = None if lab is None else np.where(valid, lab, -1).astype(np.int64)
        el = self._arr("eds_labels", i, lab_t)
        g.eds_labels = None if lab is None else (np.zeros(0, np.int64) if el is None else el.astype(np.int64))
        return g


def shard_paths(directory: str | os.PathLike) -> list[Path]:
    """The shard files of a build-graphs output folder, in order."""
    d = Path(directory)
    if not d.is_dir():
        raise InputError(d, "shards", "folder not found")
    paths = sorted(d.glob("*.arrow"))
    if not paths:
        raise InputError(d, "shards", "no .arrow shards in folder")
    return paths


@dataclass
class ShardIndex:
    """All graphs of a shard folder, addressed by (shard, row); filter by split and fraction."""

    shards: list[Shard]
    entries: list[tuple[int, int]]

    @property
    def point_features(self) -> dict:
        """What the EDS nodes' features are (every shard of the folder agrees): classifier, class
        names (the physics'), feature width (:mod:`mingraph.graphs.point_features`)."""
        return self.shards[0].point_features

    def __len__(self) -> int:
        return len(self.entries)

    def graph(self, k: int, **kw) -> StructuredGraph:
        s, i = self.entries[k]
        return self.shards[s].graph(i, **kw)

    def info(self, k: int) -> dict:
        s, i = self.entries[k]
        return self.shards[s].info(i)

    def __iter__(self) -> Iterator[StructuredGraph]:
        for k in range(len(self)):
            yield self.graph(k)


def open_shards(
    directory: str | os.PathLike, split: str | None = None, fractions: Sequence[float] | None = None
) -> ShardIndex:
    """Open every shard of a folder, keeping graphs of one split and of the given fractions."""
    shards = [Shard(p) for p in shard_paths(directory)]
    same = (
        "fractions",
        "draws",
        "pattern",
        "seed",
        "lift",
        "convention",
        "encoder_digest",
        "dataset_digest",
        "class_names",
    )
    ref = {k: shards[0].job.get(k) for k in same}
    first = shards[0].point_features
    for sh in shards[1:]:
        for key in ("classifier", "class_names", "feature_width"):
            if sh.point_features.get(key) != first.get(key):
                raise InputError(
                    sh.path,
                    f"point_features.{key}",
                    f"expected {_short(first.get(key), sh.point_features.get(key))} as in "
                    f"{shards[0].path.name}, got {_short(sh.point_features.get(key), first.get(key))}: "
                    "one folder holds the features of one --classifier "
                    "and class list; rebuild it with build-graphs",
                )
        diff = [k for k in same if sh.job.get(k) != ref[k]]
        if diff:
            raise InputError(
                sh.path,
                "job",
                f"made with other {', '.join(diff)} than {shards[0].path.name}: rebuild the folder with build-graphs",
            )
    entries = []
    for s_i, sh in enumerate(shards):
        splits = sh.table.column("split").to_pylist()
        fr = sh.table.column("fraction").to_pylist()
        for r in range(len(sh)):
            if (split is None or splits[r] == split) and (
                fractions is None or any(abs(fr[r] - f) < 1e-12 for f in fractions)
            ):
                entries.append((s_i, r))
    return ShardIndex(shards, entries)


def _short(v, other=None) -> str:
    """A value for an error line: a class list by its length and the first name where it differs
    from ``other``'s.

    Examples
    --------
    >>> _short(["a", "b", "c"], ["a", "x", "c"]), _short(64)
    ("3 classes, class 1 'b'", '64')
    """
    if not isinstance(v, list):
        return repr(v)
    o = other if isinstance(other, list) else []
    i = next((k for k in range(len(v)) if k >= len(o) or v[k] != o[k]), None)
    return f"{len(v)} classes" + ("" if i is None else f", class {i} {v[i]!r}")
