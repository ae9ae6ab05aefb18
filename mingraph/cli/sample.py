"""Whole samples on the command line: ``predict-sample`` (fields on Dask) and ``simulate-sample``."""

from __future__ import annotations

from pathlib import Path

import click

from mingraph.cli.common import predict_options, user_errors
from mingraph.cli.mineralogy_options import mineralogy_options
from mingraph.common.errors import InputError


@click.command("predict-sample")
@click.argument("sample", type=click.Path(path_type=Path))
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="Output folder (resumed if it exists)."
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Dask worker processes of the local cluster (0: one field after another, no Dask).",
)
@click.option(
    "--scheduler", help="Address of an existing Dask scheduler (tcp://host:8786) instead of a local cluster."
)
@predict_options
@click.option(
    "--overview-px", type=click.IntRange(min=16), default=2048, show_default=True, help="Overview side."
)
@mineralogy_options
@click.option("--overwrite", is_flag=True, help="Start again in OUT instead of resuming.")
@user_errors
def predict_sample(
    sample,
    out,
    model,
    workers,
    scheduler,
    fraction,
    pattern,
    seed,
    block,
    device,
    classifier,
    beam_kev,
    overview_px,
    overwrite,
    **mineralogy,
) -> None:
    """Predict every field of SAMPLE (a TIMA job folder, a dataset or a manifest .csv) and write the
    sample's modal mineralogy, grains, particles, association, liberation, overview and report, and
    OUT/sample.ome.zarr: the stitched BSE, confidence and phase map as an OME-Zarr pyramid (NGFF 0.4).

    A run killed part-way resumes in the same OUT: finished fields are kept, the rest predicted."""
    if scheduler is not None:  # before OUT/run.json: a wrong address is one line, nothing written
        from mingraph.common.engine import check_scheduler

        scheduler = check_scheduler(scheduler)
    from mingraph.analyse.mineralogy.run_options import mineralogy_kwargs  # scipy, scikit-image: when run
    from mingraph.workflows.field_input import sample_classifier
    from mingraph.workflows.sample import predict_sample as run

    if scheduler is None:  # a missing device is refused before the sample is read, as predict_sample does
        from mingraph.learn.distributed import pick_device

        pick_device(device)
    classifier, physics, names = sample_classifier(
        sample, classifier, beam_kev, mineralogy.get("minerals"), model
    )
    library_file = mineralogy.pop("minerals", None) if physics else None
    res = run(
        sample,
        out,
        model=model,
        workers=workers,
        scheduler=scheduler,
        fraction=fraction,
        pattern=pattern,
        seed=seed,
        block=block,
        device=device,
        overview_px=overview_px,
        overwrite=overwrite,
        say=click.echo,
        classifier=classifier,
        beam_kev=beam_kev,
        library_file=library_file,
        **mineralogy_kwargs(names, **mineralogy),
    )
    click.echo(
        f"{res['fields']} fields ({res['predicted']} predicted, {res['skipped']} already done); "
        f"sample results in {Path(out) / 'sample'} (report: {res['report']}); OME-Zarr: {res['zarr']}"
    )


@click.command("simulate-sample")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--grid", default="3x4", show_default=True, help="Fields as ROWSxCOLS.")
@click.option(
    "--size", type=click.IntRange(min=16), default=128, show_default=True, help="Field side in pixels."
)
@click.option(
    "--overlap", type=click.IntRange(min=0), default=16, show_default=True, help="Overlap of fields (px)."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--overwrite", is_flag=True)
@user_errors
def simulate_sample(out, grid, size, overlap, seed, overwrite) -> None:
    """Simulate one specimen cut into overlapping fields with stage positions (a dataset for predict-sample)."""
    from mingraph.acquire.sample import simulate_sample as run

    try:
        rows, cols = (int(v) for v in grid.lower().split("x"))
    except ValueError:
        raise InputError("--grid", "grid", f"expected ROWSxCOLS like 3x4, got {grid!r}") from None
    path = run(out, (rows, cols), size, overlap, seed, overwrite)
    click.echo(f"wrote {rows * cols} fields of {size}x{size} px ({overlap} px overlap) to {path}")
