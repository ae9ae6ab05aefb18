"""The ``mingraph`` commands that train, score and convert models (registered in :mod:`mingraph.cli`)."""

from __future__ import annotations

from pathlib import Path

import click

from mingraph.cli.common import parse_fractions, user_errors
from mingraph.common.files import check_artifact_output
from mingraph.common.outputs import output_folder


@click.command()
@click.argument("shards", required=False, type=click.Path(path_type=Path))
@click.option(
    "--online", type=click.Path(path_type=Path), help="Train on fresh EDS draws from this raw dataset."
)
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="Run folder (checkpoints, metrics)."
)
@click.option("--epochs", type=int, help="Epochs (default 120, the paper's).")
@click.option("--config", type=click.Path(path_type=Path), help="JSON file of training settings.")
@click.option(
    "--encoder",
    type=click.Path(path_type=Path),
    help="Encoder artifact (for online mode or raw-spectra shards).",
)
@click.option(
    "--backend", type=click.Choice(["structured", "sparse", "dgl"]), help="GAT backend (default structured)."
)
@click.option("--device", help="cpu, cuda, or auto (default).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option(
    "--arch",
    type=click.Choice(["paper", "fusion"]),
    default="paper",
    show_default=True,
    help="paper: the paper's GAT; fusion: the fusion model (online, needs a CNN --encoder).",
)
@user_errors
def train(shards, online, out, epochs, config, encoder, backend, device, resume, arch) -> None:
    """Train the GAT on SHARDS (from build-graphs) or --online on a raw dataset."""
    run = output_folder(out, "train", create=False)  # before any work: refused here, not after loading
    from mingraph.learn.trainers import TRAINERS

    line = TRAINERS[arch](
        run,
        shards=shards,
        online=online,
        config=config,
        encoder=encoder,
        epochs=epochs,
        resume=resume,
        backend=backend,
        device=device,
    )
    click.echo(line)
    from mingraph.learn.distributed import end_worker

    end_worker()  # under torchrun: leave before gloo's exit-time teardown can abort a finished run


@click.command()
@click.argument("run", type=click.Path(path_type=Path))
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--fractions", default="0.001,0.01,0.05,0.1", show_default=True)
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="Output folder (default RUN/eval).")
@click.option(
    "--unet", type=click.Path(path_type=Path), help="A UNet from train-unet: the BSE-only baseline."
)
@click.option(
    "--knn-run", type=click.Path(path_type=Path), help="A GAT run trained on kNN graphs: the ablation."
)
@click.option("--max-tiles", type=int, help="Evaluate on the first N tiles of the split only.")
@click.option(
    "--compare",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Other models on the same points (classes matched to RUN's by name).",
)
@click.option(
    "--tune-on",
    type=click.Path(path_type=Path),
    help="Dataset whose val split tunes the classical baselines.",
)
@click.option(
    "--pattern",
    type=click.Choice(["random", "grid", "mask"]),
    default="random",
    show_default=True,
    help="Where EDS is sampled; mask: a random subset of each field's measured points at each "
    "fraction (point-spectra fields; a fraction above what was measured is refused).",
)
@click.option(
    "--classifier",
    type=click.Choice(["encoder", "physics", "onnx"]),
    default="encoder",
    show_default=True,
    help="Point classifier for the model and every baseline: the model's encoder, or the physics "
    "(its --minerals list; labels matched by name).",
)
@click.option(
    "--beam-kev", type=click.FloatRange(1, 30), help="Beam kV for the physics (default: the file's)."
)
@click.option(
    "--minerals", type=click.Path(path_type=Path), help="The physics' mineral list (default: shipped)."
)
@user_errors
def evaluate(
    run,
    dataset,
    fractions,
    split,
    out,
    unet,
    knn_run,
    max_tiles,
    compare,
    tune_on,
    pattern,
    classifier,
    beam_kev,
    minerals,
) -> None:
    """Score RUN (a run folder or model file) on DATASET per EDS fraction, with baselines."""
    from mingraph.analyse.evaluate import evaluate as run_eval

    res = run_eval(
        run,
        dataset,
        out,
        parse_fractions(fractions),
        split,
        unet=unet,
        knn_model=knn_run,
        compare=compare,
        tune_on=tune_on,
        max_tiles=max_tiles,
        pattern=pattern,
        classifier=classifier,
        beam_kev=beam_kev,
        minerals=minerals,
    )
    click.echo(f"{'method':<36}{'EDS %':>6}{'F1 tile-mean':>13}{'F1 pooled':>10}{'F1 macro':>9}")
    for r in res["results"]:
        click.echo(
            f"{r['method']:<36}{100 * r['fraction']:>6.2f}{r['tile_mean_f1']:>13.3f}{r['f1_weighted']:>10.3f}{r['f1_macro']:>9.3f}"
        )
    for key, what in (
        ("classes_left_out", "classes in the dataset but not in the model, left out of the scores"),
        ("model_classes_not_in_labels", "classes of the model that the dataset never names"),
    ):
        if res.get(key):
            click.echo(f"{what}: {res[key]}")
    for name, c in res.get("compared_classes", {}).items():
        if c["not_in_model_unclassified"]:
            click.echo(f"{name}: classes RUN lacks, counted unclassified: {c['not_in_model_unclassified']}")
    for line in res.get("notes", []):
        click.echo(f"note: {line}")
    click.echo(f"wrote {res['out']}")


@click.command("train-unet")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--epochs", type=int, default=40, show_default=True, help="At most; stops when validation F1 stalls."
)
@click.option("--patience", type=int, default=8, show_default=True, help="Epochs without validation gain.")
@click.option(
    "--class-weight",
    type=click.Choice(["none", "sqrt-inverse", "inverse"]),
    default="sqrt-inverse",
    show_default=True,
    help="Loss weight per class from its training frequency.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@user_errors
def train_unet(dataset, out, epochs, patience, class_weight, seed) -> None:
    """Train the BSE-only UNet baseline on DATASET's training split (best epoch on its validation split)."""
    from mingraph.learn.baselines import train_unet as run

    path = run(
        dataset,
        check_artifact_output(out),
        epochs=epochs,
        seed=seed,
        patience=patience,
        class_weight=class_weight,
    )
    click.echo(f"wrote {path}")


@click.command("export-model")
@click.argument("run", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--note", default="", help="What the model was trained on, and its scores.")
@user_errors
def export_model(run, out, note) -> None:
    """Write RUN's best model as a shareable file (no local paths), e.g. to ship as the default."""
    from mingraph.learn.bundle import export_bundle, resolve_model

    click.echo(f"wrote {export_bundle(resolve_model(run), check_artifact_output(out), note)}")


@click.command("convert-model")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--from", "source", type=click.Choice(["authors"]), required=True, help="Whose model it is.")
@click.option("--encoder", type=click.Path(path_type=Path), help="Their spectral encoder (ONNX file).")
@user_errors
def convert_model(checkpoint, out, source, encoder) -> None:
    """Write a mingraph model file from another project's model (the paper's authors' checkpoint)."""
    from mingraph.learn.convert import convert_model as convert

    click.echo(f"wrote {convert(source, checkpoint, encoder, check_artifact_output(out))}")
