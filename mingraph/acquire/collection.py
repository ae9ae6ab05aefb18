"""Datasets of many fields: append fields to a dataset, import a manifest, merge class names by
name, and describe a dataset (``mingraph dataset info``).

Class ids are the dataset's: each field's label ids are named (``--classes``), renamed or merged
(``--class-map``), then mapped onto the dataset's list by name, new names appended at its end,
so the ids of fields already in the dataset never change.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mingraph.acquire.dataset import (
    SPLITS,
    TILE_SCHEMA,
    Dataset,
    check_record,
    encode_record,
    open_dataset,
    store_eds,
    write_dataset,
)
from mingraph.acquire.field_files import FieldFiles, field_record
from mingraph.common.errors import InputError
from mingraph.common.output_paths import named_os_error, temp_prefix
from mingraph.common.outputs import atomic_folder
from mingraph.common.textfiles import (
    Table,
    check_unique,
    read_json_input,
    read_table,
    read_text_input,
    sniff_delimiter,
)

MANIFEST_COLUMNS = (
    "bse",
    "labels",
    "points",
    "spectra",
    "eds_mask",
    "valid",
    "classes",
    "pixel_size",
    "split",
    "name",
    "tima",
    "stage_x_um",  # stage position of the field's centre (mingraph predict-sample), µm
    "stage_y_um",
)
PATH_COLUMNS = ("bse", "labels", "points", "spectra", "eds_mask", "valid", "classes", "tima")


def read_class_map(path: str | Path) -> dict[str, str]:
    """{name in a field: name in the dataset} from JSON ({"old": "new"}) or CSV (old,new lines).

    Several old names may map to one new name (a merge)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        obj = read_json_input(path, "class map")
        if not isinstance(obj, dict) or not all(isinstance(v, str) and v.strip() for v in obj.values()):
            raise InputError(path, "class map", 'expected an object {"name": "new name", ...}')
        return {str(k): v.strip() for k, v in obj.items()}
    text = read_text_input(path, "class map")
    delim = sniff_delimiter(text)
    out: dict[str, str] = {}
    lines: dict[str, int] = {}
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    first = True
    for row in reader:
        row = [c.strip() for c in row]
        i = reader.line_num
        if not any(row):
            continue
        if first and [c.lower() for c in row] in (["from", "to"], ["old", "new"]):
            first = False
            continue
        first = False
        if len(row) != 2 or not row[0] or not row[1]:
            raise InputError(path, f"line {i}", f"expected 'old name{delim}new name', got {row}")
        if row[0] in out:
            raise InputError(
                path,
                f"line {i}",
                f"{row[0]!r} appears twice (also line {lines[row[0]]}): names must be unique",
            )
        out[row[0]], lines[row[0]] = row[1], i
    return out


def merge_classes(
    names: list[str], field_names: list[str], class_map: dict[str, str]
) -> tuple[list[str], np.ndarray]:
    """(dataset names after adding a field's, lookup table field id -> dataset id)."""
    merged = list(names)
    lut = []
    for n in field_names:
        m = class_map.get(n, n)
        if m not in merged:
            merged.append(m)
        lut.append(merged.index(m))
    return merged, np.asarray(lut, np.int64)


def _relabel(labels: np.ndarray | None, lut: np.ndarray) -> np.ndarray | None:
    if labels is None or lut.size == 0:
        return labels
    return np.where(labels >= 0, lut[np.clip(labels, 0, lut.size - 1)], -1).astype(np.int32)


def add_fields(
    out: str | os.PathLike,
    files: list[FieldFiles],
    overwrite: bool = False,
    class_map: str | os.PathLike | None = None,
    seed: int = 0,
    say=None,
) -> Path:
    """Write ``files`` as a new dataset at ``out``, or append them when ``out`` is a dataset
    (``overwrite``: replace it).  Atomic: the dataset is whole before and after, or unchanged."""
    say = say or (lambda line: None)
    out = Path(out)
    cmap = read_class_map(class_map) if class_map is not None else {}
    existing = open_dataset(out) if out.exists() and not overwrite else None
    out.parent.mkdir(parents=True, exist_ok=True)
    # hypermaps are read lazily into memory-mapped files here, beside the output (same disk)
    try:
        work_dir = tempfile.TemporaryDirectory(dir=out.parent, prefix=temp_prefix(out, "import"))
    except OSError as e:
        raise named_os_error(e, out) from None
    with work_dir as work:
        names = existing.class_names if existing is not None else []
        records, sources, used = [], [], set()
        for k, f in enumerate(files):
            (Path(work) / str(k)).mkdir()
            rec, field_names, meta = field_record(f, seed, say, Path(work) / str(k))
            used |= set(field_names) & set(cmap)
            names, lut = merge_classes(names, field_names, cmap)
            rec.labels = _relabel(rec.labels, lut)
            records.append(rec)
            sources.append({"tile_id": rec.tile_id, **meta})
        unused = sorted(set(cmap) - used)
        if unused:
            say(f"class map: no field has the classes {unused}")
        if existing is None:
            meta = {"kind": "imported", "fields": sources}
            return write_dataset(out, records, names, meta=meta, overwrite=overwrite)
        return append_records(existing, records, names, sources)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def append_records(ds: Dataset, records: list, class_names: list[str], sources: list[dict]) -> Path:
    """A copy of ``ds`` with ``records`` added (EDS files hard-linked where possible), renamed
    over it; ``class_names`` must extend the dataset's (new names at the end)."""
    if class_names[: len(ds.class_names)] != ds.class_names:
        raise InputError(ds.path, "class_names", "the merged class list must keep the dataset's ids")
    counts = {s: ds.splits.count(s) for s in SPLITS}
    ids = set(ds.tile_ids)
    with atomic_folder(ds.path, overwrite=True, kind="dataset") as tmp:
        for sub in ("spectra", "points"):
            if (ds.path / sub).is_dir():
                (tmp / sub).mkdir()
                for p in (ds.path / sub).iterdir():
                    _link_or_copy(p, tmp / sub / p.name)
        with pq.ParquetWriter(tmp / "tiles.parquet", TILE_SCHEMA, compression="zstd") as writer:
            for g in range(ds._file.num_row_groups):
                writer.write_table(ds._file.read_row_group(g).cast(TILE_SCHEMA))
            rows = []
            for k, rec in enumerate(records):
                check_record(rec, len(class_names))
                if rec.tile_id in ids:
                    raise InputError(
                        f"tile {rec.tile_id}", "tile_id", f"already in {ds.path}: give another --name"
                    )
                ids.add(rec.tile_id)
                rows.append(encode_record(rec, store_eds(tmp, rec, len(ds) + k)))
                counts[rec.split] += 1
            if rows:
                writer.write_table(pa.Table.from_pylist(rows, schema=TILE_SCHEMA))
        info = dict(ds.info)
        info.update(
            class_names=list(class_names),
            n_tiles=sum(counts.values()),
            splits=counts,
            kind="imported" if info.get("kind") == "imported" else "mixed",
            fields=list(info.get("fields", [])) + sources,
        )
        (tmp / "dataset.json").write_text(json.dumps(info, indent=2))
    return ds.path


def read_manifest(path: str | os.PathLike) -> list[FieldFiles]:
    """Fields listed in a CSV manifest: a header row naming some of ``MANIFEST_COLUMNS``, then one
    field a row; paths relative to the manifest's folder; empty cells mean absent.

    Read as every text input is (:func:`mingraph.common.textfiles.read_table`: UTF-8 with or without a
    BOM, delimiter sniffed, decimal commas where unambiguous); a field name given twice is refused."""
    return read_manifest_table(path)[0]


def read_manifest_table(path: str | os.PathLike) -> tuple[list[FieldFiles], Table]:
    """(the fields of :func:`read_manifest`, the table they were read from, one row per field)."""
    path = Path(path)
    table = read_table(path, "manifest")
    if not table.rows:
        raise InputError(path, "manifest", "no fields (expected a header row, then one field a row)")
    unknown = sorted(set(table.header) - set(MANIFEST_COLUMNS))
    if unknown:
        raise InputError(
            path,
            "columns",
            f"unknown {unknown} (delimiter {table.delimiter!r}); expected some of {list(MANIFEST_COLUMNS)}",
        )
    out = []
    for i, row in enumerate(table.rows):
        cell = {k: v.strip() or None for k, v in row.items()}
        kw = {k: (path.parent / cell[k]) if cell.get(k) else None for k in PATH_COLUMNS}
        px = table.number(i, "pixel_size", "µm")
        if cell.get("split") and cell["split"] not in SPLITS:
            raise InputError(
                path, f"line {table.lines[i]}: split", f"expected one of {SPLITS}, got {cell['split']!r}"
            )
        out.append(FieldFiles(**kw, pixel_size_um=px, split=cell.get("split"), name=cell.get("name")))
    check_unique([f.name for f in out if f.name], path, "name", "field name")
    return out, table


def dataset_info(path: str | os.PathLike) -> str:
    """A plain-text table of a dataset: fields, splits, EDS sources, classes and labelled pixels."""
    ds = open_dataset(path)
    names = ds.class_names
    px = {s: np.zeros(len(names), np.int64) for s in SPLITS}
    lines = [
        f"{ds.path}: {len(ds)} fields ("
        + ", ".join(f"{s} {ds.splits.count(s)}" for s in SPLITS)
        + f"), {len(names)} classes",
        f"{'field':<24}{'split':<7}{'size':>11}{'µm/px':>9}  {'EDS':<18}{'labelled px':>12}",
    ]
    for i in range(len(ds)):
        f = ds.field(i)
        n_lab = 0
        if f.labels is not None:
            lab = f.labels[f.valid & (f.labels >= 0)]
            px[ds.splits[i]] += np.bincount(lab, minlength=len(names))
            n_lab = lab.size
        kind = {"DenseSpectrumImage": "hypermap", "PointSpectra": "points", "SimulatedEds": "simulated"}.get(
            type(f.eds).__name__, "none"
        )
        if f.eds_mask is not None:
            kind += f" {int(f.eds_mask.sum())}"
        size = f"{f.shape[0]}x{f.shape[1]}"
        lines.append(
            f"{f.name[:23]:<24}{ds.splits[i]:<7}{size:>11}{f.pixel_size_um:>9.4g}  {kind:<18}{n_lab:>12}"
        )
    lines.append(f"{'class':<24}{'id':>4}" + "".join(f"{s + ' px':>12}" for s in SPLITS))
    for k, n in enumerate(names):
        lines.append(f"{n[:23]:<24}{k:>4}" + "".join(f"{int(px[s][k]):>12}" for s in SPLITS))
    return "\n".join(lines)
