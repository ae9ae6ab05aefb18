"""``mingraph import`` and ``mingraph dataset``: fields into datasets (registered by cli.py)."""

from __future__ import annotations

from pathlib import Path

import click

from mingraph.cli.common import user_errors
from mingraph.common.errors import InputError


@click.command("import")
@click.argument("out", metavar="DATASET", type=click.Path(path_type=Path))
@click.option("--bse", type=click.Path(path_type=Path), help="BSE image (TIFF or PNG).")
@click.option(
    "--labels", type=click.Path(path_type=Path), help="Phase-id image (TIFF or PNG), same size as the BSE."
)
@click.option(
    "--eds-mask",
    type=click.Path(path_type=Path),
    help="Image of where EDS was measured (non-zero = measured).",
)
@click.option(
    "--spectra",
    type=click.Path(path_type=Path),
    help="Spectrum image (.bcf, .hspy), any energy calibration (rebinned to 10 eV from 0 eV).",
)
@click.option(
    "--points",
    type=click.Path(path_type=Path),
    help="Point spectra: .npz ('rc' (n, 2) row, col; 'spectra' (n, channels)) or a CSV row,col,spectrum of .spx/.msa files.",
)
@click.option(
    "--tima",
    type=click.Path(path_type=Path),
    help="TESCAN TIMA field folder (bse.png, xray.map[.gz], pixelmask.png; profile.xml in its parent).",
)
@click.option(
    "--valid",
    type=click.Path(path_type=Path),
    help="Image of valid (specimen) pixels; default: all (a TIMA field: its job's MinBse-MaxBse BSE window).",
)
@click.option(
    "--classes",
    type=click.Path(path_type=Path),
    help="Names of the label ids: JSON list or {id: name}, or one per line (merged by name).",
)
@click.option(
    "--class-map",
    type=click.Path(path_type=Path),
    help="Rename or merge classes: JSON {old: new} or CSV old,new.",
)
@click.option(
    "--manifest",
    type=click.Path(path_type=Path),
    help="CSV of many fields (columns bse, labels, points, spectra, tima, eds_mask, valid, classes, pixel_size, split, name; paths relative to it).",
)
@click.option(
    "--pixel-size",
    type=click.FloatRange(min=0, min_open=True),
    help="Pixel size in µm (default: the file's own, from hypermap axes or the TIMA profile; else 1 µm, with a notice).",
)
@click.option(
    "--split",
    type=click.Choice(["train", "val", "test"]),
    help="Split of the field (default: 80/10/10 by a hash of its name and --seed).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split by field.")
@click.option("--name", help="Field (tile) id (default: the BSE file's stem).")
@click.option("--overwrite", is_flag=True, help="Replace DATASET instead of appending to it.")
@user_errors
def import_(
    out,
    bse,
    labels,
    eds_mask,
    spectra,
    points,
    tima,
    valid,
    classes,
    class_map,
    manifest,
    pixel_size,
    split,
    seed,
    name,
    overwrite,
) -> None:
    """Import a measured field (or a --manifest of many) into DATASET, appending when it exists."""
    from mingraph.acquire.collection import add_fields, read_manifest
    from mingraph.acquire.importing import FieldFiles

    if manifest is not None:
        if any(x is not None for x in (bse, labels, eds_mask, spectra, points, tima, valid, name)):
            raise InputError("import", "--manifest", "give the fields' files in the manifest, not as options")
        fields = read_manifest(manifest)
        for f in fields:
            f.classes = f.classes or classes
            f.pixel_size_um = f.pixel_size_um if f.pixel_size_um is not None else pixel_size
            f.split = f.split or split
    else:
        fields = [
            FieldFiles(bse, labels, eds_mask, spectra, points, valid, classes, pixel_size, split, name, tima)
        ]
    path = add_fields(out, fields, overwrite=overwrite, class_map=class_map, seed=seed, say=click.echo)
    click.echo(f"wrote {path} ({len(fields)} field{'s' if len(fields) != 1 else ''} added)")


@click.group()
def dataset() -> None:
    """Look into a dataset."""


@dataset.command("info")
@click.argument("path", metavar="DATASET", type=click.Path(path_type=Path))
@user_errors
def dataset_info(path) -> None:
    """Fields, splits, EDS sources, classes and labelled pixels of DATASET."""
    from mingraph.acquire.collection import dataset_info as info

    click.echo(info(path))
