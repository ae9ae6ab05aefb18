"""The ``mingraph`` command line: simulate, import, build-graphs, train, evaluate, predict, demo."""

from __future__ import annotations

import atexit
import gc
from pathlib import Path

import click

from mingraph.cli.common import CLASSIFIER_OPTIONS, parse_fractions, predict_options, user_errors
from mingraph.cli.mineralogy_options import mineralogy_options
from mingraph.common.errors import InputError
from mingraph.common.files import check_artifact_output
from mingraph.version import __version__


@click.group()
@click.version_option(__version__, prog_name="mingraph")
def main() -> None:
    """Mineral segmentation from SEM BSE images and sparse EDS spectra with graph neural networks."""
    quick_exit()


def quick_exit() -> None:
    """Let the command's process end without collecting its garbage first.

    At exit the interpreter collects every object of every imported module (torch, numba and
    the rest: about 1 s, as long as a 256² field's prediction); :func:`gc.freeze`, registered
    first so that it runs after every other exit handler, takes them out of those collections.
    Files are closed and exit handlers run as before.  Registered once a process.

    Examples
    --------
    >>> quick_exit(); quick_exit()  # the second call registers nothing more
    """
    global _QUICK_EXIT
    if not _QUICK_EXIT:
        atexit.register(gc.freeze)
        _QUICK_EXIT = True


_QUICK_EXIT = False


@main.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--tiles", "n_tiles", type=int, required=True, help="Number of tiles to simulate.")
@click.option("--size", type=int, default=150, show_default=True, help="Tile height and width in pixels.")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed; the same seed gives the same dataset."
)
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@click.option("--split", type=click.Choice(["train", "val", "test"]), help="Put every tile in this split.")
@click.option(
    "--params", type=click.Path(path_type=Path), help="JSON file of simulator parameters (docs/simulator.md)."
)
@user_errors
def simulate(
    out: Path, n_tiles: int, size: int, seed: int, overwrite: bool, split: str | None, params
) -> None:
    """Simulate a labelled dataset of SEM tiles (BSE, phases, on-demand EDS spectra) into OUT."""
    from mingraph.acquire.importing import simulate_dataset
    from mingraph.common.textfiles import read_json_input

    sim = read_json_input(params, "params") if params else None
    if sim is not None and not isinstance(sim, dict):
        raise InputError(params, "params", "expected a JSON object of simulator parameters")
    path = simulate_dataset(out, n_tiles, size, seed, overwrite=overwrite, split=split, params=sim)
    click.echo(f"wrote {n_tiles} tiles to {path}")


@main.command("build-graphs")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--fractions", default="0.001,0.01,0.05,0.1", show_default=True, help="EDS fractions of valid pixels."
)
@click.option("--draws", type=int, default=1, show_default=True, help="EDS draws per tile and fraction.")
@click.option("--pattern", type=click.Choice(["random", "grid", "mask"]), default="random", show_default=True)
@click.option(
    "--encoder", type=click.Path(path_type=Path), help="Encoder artifact: store embeddings, not spectra."
)
@click.option(
    "--workers", type=int, default=1, show_default=True, help="Dask worker processes (1: in this process)."
)
@click.option("--scheduler", help="Address of an existing Dask scheduler instead of a local cluster.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--lift",
    type=float,
    help="Height of EDS nodes above the pixel plane [default: 1; 5 with --convention authors]",
)
@click.option("--convention", type=click.Choice(["paper", "authors"]), default="paper", show_default=True)
@click.option(
    "--classifier",
    type=click.Choice(["physics", "encoder", "onnx"]),
    help="EDS features: physics (class probabilities over --minerals plus unknown, calibrated on "
    "each graph's points), encoder (--encoder's embeddings) or onnx (the authors' ONNX encoder, "
    "--encoder eds_emb_model.onnx). Default: --encoder's embeddings, else the raw spectra.",
)
@CLASSIFIER_OPTIONS[1]  # --beam-kev, as predict, predict-sample and acquire take it
@click.option(
    "--minerals",
    type=click.Path(path_type=Path),
    help="Mineral list for the physics classifier (default: the shipped library).",
)
@user_errors
def build_graphs(
    dataset,
    out,
    fractions,
    draws,
    pattern,
    encoder,
    workers,
    scheduler,
    seed,
    lift,
    convention,
    classifier,
    beam_kev,
    minerals,
) -> None:
    """Precompute graphs of DATASET as Arrow shards in OUT (re-runs skip finished shards).

    --convention authors builds the graph the paper's authors released (docs/formats.md);
    --classifier physics stores the physics classifier's class probabilities as the EDS features
    (train then fits a GAT on them)."""
    from mingraph.graphs.build import build_graphs as run

    opts = dict(workers=workers, seed=seed, lift=lift, convention=convention, scheduler=scheduler)
    opts |= dict(classifier=classifier, minerals=minerals, beam_kev=beam_kev, say=click.echo)
    res = run(dataset, out, parse_fractions(fractions), draws, pattern, encoder, **opts)
    click.echo(
        f"{res['graphs']} graphs in {res['shards']} shards ({res['built']} built, {res['skipped']} already done) in {out}"
    )


@main.command("fit-encoder")
@click.argument("dataset", metavar="[DATASET]", type=click.Path(path_type=Path))
@click.argument("out", required=False, type=click.Path(path_type=Path))
@click.option("--kind", type=click.Choice(["cnn", "pca"]), default="cnn", show_default=True)
@click.option(
    "--points",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Labelled spectra drawn per training tile.",
)
@click.option("--epochs", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--simulate-instruments",
    is_flag=True,
    help="Train the CNN on the simulator's physics at drawn instrument settings (no DATASET; "
    "mingraph/spectra/instrument_spectra.py).",
)
@click.option(
    "--minerals",
    type=click.Path(path_type=Path),
    help="With --simulate-instruments: a mineral list or library [default: the simulator's 50].",
)
@click.option(
    "--per-class",
    type=int,
    default=1000,
    show_default=True,
    help="With --simulate-instruments: spectra of each mineral.",
)
@click.option("--counts", help="With --simulate-instruments: LOW,HIGH total counts, log-uniform [300,50000].")
@click.option("--beam-kev", help="With --simulate-instruments: LOW,HIGH beam kV, uniform [15,25].")
@click.option("--fwhm", help="With --simulate-instruments: LOW,HIGH FWHM at Mn Kα (eV), uniform [120,150].")
@click.option(
    "--offset-ev", type=float, help="With --simulate-instruments: energy offset within ± this (eV) [40]."
)
@click.option("--gain", type=float, help="With --simulate-instruments: gain within 1 ± this [0.003].")
@user_errors
def fit_encoder(
    dataset,
    out,
    kind,
    points,
    epochs,
    seed,
    simulate_instruments,
    minerals,
    per_class,
    counts,
    beam_kev,
    fwhm,
    offset_ev,
    gain,
) -> None:
    """Fit the spectral encoder (spectrum -> 64 values) on labelled spectra of DATASET's training
    split, or with --simulate-instruments on simulated spectra over instrument settings."""
    jitter = {
        "--minerals": minerals,
        "--counts": counts,
        "--beam-kev": beam_kev,
        "--fwhm": fwhm,
        "--offset-ev": offset_ev,
        "--gain": gain,
    }
    if simulate_instruments:
        if out is not None:
            raise InputError("fit-encoder", "OUT", "--simulate-instruments takes OUT alone (no DATASET)")
        out = dataset
        if kind != "cnn":
            raise InputError(
                "fit-encoder", "--kind", "--simulate-instruments trains the CNN: give --kind cnn"
            )
        if per_class < 1:
            raise InputError(
                "fit-encoder", "--per-class", f"expected at least 1 spectrum a mineral, got {per_class}"
            )
        from mingraph.spectra.instrument_spectra import JitterRanges, fit_encoder_on_instruments, parse_range

        d = JitterRanges()
        ranges = JitterRanges(
            counts=parse_range(counts, "--counts", d.counts),
            beam_kev=parse_range(beam_kev, "--beam-kev", d.beam_kev),
            fwhm_ev=parse_range(fwhm, "--fwhm", d.fwhm_ev),
            offset_ev=d.offset_ev if offset_ev is None else offset_ev,
            gain=d.gain if gain is None else gain,
        )
        path = fit_encoder_on_instruments(
            check_artifact_output(out), minerals, per_class, ranges, epochs, seed
        )
        click.echo(f"wrote {path}")
        return
    given = [k for k, v in jitter.items() if v is not None]
    if given:
        raise InputError("fit-encoder", given[0], "only with --simulate-instruments")
    if out is None:
        raise InputError("fit-encoder", "OUT", "expected DATASET OUT (or --simulate-instruments OUT)")
    from mingraph.spectra.fit import fit_encoder_on_dataset

    path = fit_encoder_on_dataset(dataset, check_artifact_output(out), kind, points, epochs, seed)
    click.echo(f"wrote {path}")


@main.command()
@click.argument("input_", metavar="[INPUT]", required=False, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@predict_options
@click.option("--tile", default="0", show_default=True, help="Tile id or index when INPUT is a dataset.")
@click.option(
    "--simulate", "sim_size", type=int, help="Predict a simulated SIZE×SIZE field instead of INPUT."
)
@click.option("--bse", type=click.Path(path_type=Path), help="BSE image of a measured field (with --points).")
@click.option(
    "--points", type=click.Path(path_type=Path), help=".npz with 'rc' (n×2 row, col) and 'spectra' (n×3000)."
)
@click.option("--valid", type=click.Path(path_type=Path), help="Mask image of specimen pixels (with --bse).")
@click.option(
    "--labels", type=click.Path(path_type=Path), help="Phase-id image to score against (with --bse)."
)
@click.option(
    "--classes",
    type=click.Path(path_type=Path),
    help="Names of the --labels ids (default: the model's); matched to the model's classes by name.",
)
@click.option(
    "--pixel-size",
    type=click.FloatRange(min=0, min_open=True),
    help="Pixel size in µm (with --bse; 1 µm, with a notice, when not given).",
)
@mineralogy_options
@click.option("--overwrite", is_flag=True)
@user_errors
def predict(
    input_,
    out,
    model,
    tile,
    fraction,
    pattern,
    sim_size,
    bse,
    points,
    valid,
    labels,
    classes,
    pixel_size,
    seed,
    block,
    device,
    classifier,
    beam_kev,
    overwrite,
    **mineralogy,
) -> None:
    """Phase map, confidence, modal mineralogy and a report for one field.

    INPUT is a dataset folder (with --tile); or use --simulate SIZE; or --bse IMAGE --points FILE.
    """
    from mingraph.learn.bundle import load_model, point_record
    from mingraph.learn.distributed import pick_device
    from mingraph.workflows.field_input import open_field
    from mingraph.workflows.predict import library_densities, point_mineralogy, run_predict

    bundle = load_model(model, device=pick_device(device))
    given = open_field(
        bundle,
        dataset=input_,
        tile=tile,
        simulate=sim_size,
        bse=bse,
        points=points,
        valid=valid,
        labels=labels,
        classes=classes,
        pixel_size_um=pixel_size,
        fraction=fraction,
        pattern=pattern,
        seed=seed,
        classifier=classifier,
        beam_kev=beam_kev,
        minerals=mineralogy.get("minerals"),
        say=click.echo,
    )
    bundle, notices = given.bundle, given.notices
    res = run_predict(
        out,
        given.sample,
        bundle,
        given.rc,
        given.evidence,
        {"input": given.label, "model": str(model or "default")} | point_record(bundle, given.classifier),
        overwrite,
        block,
        library_densities(bundle.class_names),
        **point_mineralogy(bundle, mineralogy),
    )
    if res["metrics"]:
        m = res["metrics"]
        near = (
            f", nearest-EDS labelling on the same points {m['nearest_eds_f1_weighted']:.3f}"
            if "nearest_eds_f1_weighted" in m
            else ""
        )
        click.echo(f"F1 (weighted) against the known phases: {m['f1_weighted']:.3f}{near}")
    for line in notices:
        click.echo(line)
    click.echo(f"wrote {res['out']} (report: {res['report']})")


@main.command()
@click.argument("dataset", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--protocol", type=click.Choice(["reduced", "full"]), default="reduced", show_default=True)
@click.option("--workers", type=int, default=2, show_default=True)
@click.option(
    "--docs", type=click.Path(path_type=Path), help="Also write study.md and figures here (e.g. docs/)."
)
@user_errors
def study(dataset, out, protocol, workers, docs) -> None:
    """Reproduce the paper's study on DATASET: encoder, shards, GAT, kNN ablation, UNet, evaluation."""
    from mingraph.workflows.study import run_study

    path = run_study(dataset, out, protocol, workers, docs)
    table = path.read_text().split("## Table 1", 1)[1].split("The paper's Table 1", 1)[0]
    click.echo(table.strip())  # every method on the same test points, beside nearest EDS
    click.echo(f"wrote {path}")


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("out"), show_default=True)
@click.option("--tiles", "n_tiles", type=int, default=4, show_default=True, help="Example tiles to render.")
@click.option("--size", type=int, default=150, show_default=True, help="Example tile size.")
@click.option(
    "--field", type=int, default=512, show_default=True, help="Side of the simulated field to predict."
)
@click.option(
    "--fraction",
    type=click.FloatRange(0, 1),
    default=0.01,
    show_default=True,
    help="EDS fraction measured on the field.",
)
@click.option("--model", type=click.Path(path_type=Path), help="Model file (default: the shipped model).")
@click.option("--seed", type=int, default=0, show_default=True)
@user_errors
def demo(
    out: Path, n_tiles: int, size: int, field: int, fraction: float, model: Path | None, seed: int
) -> None:
    """Simulate a field, measure 1 % EDS, predict it with the shipped model; write all outputs to OUT."""
    from mingraph.workflows.demo import run_demo

    for path in run_demo(
        out, n_tiles=n_tiles, size=size, seed=seed, field=field, fraction=fraction, model=model
    ):
        click.echo(f"wrote {path}")
    import shlex

    click.echo(f"look at it: mingraph view {shlex.quote(str(Path(out) / 'prediction'))}")


# model commands live in cli/models.py (train, evaluate, train-unet, export-model, convert-model,
# calibrate-model, model info)
from mingraph.cli.models import (  # noqa: E402
    calibrate_model,
    convert_model,
    evaluate,
    export_model,
    model_group,
    train,
    train_unet,
)

main.add_command(train)
main.add_command(evaluate)
main.add_command(train_unet)
main.add_command(export_model)
main.add_command(convert_model)
main.add_command(calibrate_model)
main.add_command(model_group)

from mingraph.cli.data import dataset, import_  # noqa: E402  (data commands: their own module)

main.add_command(import_, "import")
main.add_command(dataset)

from mingraph.cli.sample import predict_sample, simulate_sample  # noqa: E402  (whole samples)

main.add_command(predict_sample)
main.add_command(simulate_sample)
from mingraph.cli.acquire import acquire, acquire_study  # noqa: E402  (acquisition sessions: their own module)

main.add_command(acquire)
main.add_command(acquire_study)

from mingraph.cli.classify import classify_spectra_cmd  # noqa: E402  (physics classifier)
from mingraph.cli.minerals import minerals_cmd  # noqa: E402  (mineral lists)

main.add_command(classify_spectra_cmd)
main.add_command(minerals_cmd)

from mingraph.cli.view import view_cmd  # noqa: E402  (napari: the view extra, imported when run)

main.add_command(view_cmd)

if __name__ == "__main__":  # pragma: no cover
    main()
