"""The ``mingraph`` commands that train, score and convert models (registered in :mod:`mingraph.cli`)."""

from __future__ import annotations

from pathlib import Path

import click

from mingraph.cli.common import parse_fractions, user_errors
from mingraph.common.files import check_artifact_output
from mingraph.common.outputs import output_folder
from mingraph.learn.trainers import DEFAULT_EPOCHS


@click.command()
@click.argument("shards", required=False, type=click.Path(path_type=Path))
@click.option(
    "--online", type=click.Path(path_type=Path), help="Train on fresh EDS draws from this raw dataset."
)
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="Run folder (checkpoints, metrics)."
)
@click.option(
    "--epochs",
    type=click.IntRange(1),
    help=f"Epochs (default per --arch: {DEFAULT_EPOCHS['paper']} for paper, the paper's; "
    f"{DEFAULT_EPOCHS['fusion']} for fusion, or its recipe's).",
)
@click.option(
    "--config",
    type=click.Path(path_type=Path),
    help="paper: JSON file of training settings (fusion: --recipe).",
)
@click.option(
    "--encoder",
    type=click.Path(path_type=Path),
    help="Encoder artifact (for online mode or raw-spectra shards).",
)
@click.option(
    "--backend",
    type=click.Choice(["structured", "sparse", "dgl"]),
    help="paper: GAT backend (default structured).",
)
@click.option("--device", help="cpu, cuda, or auto (default).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option(
    "--recipe",
    type=click.Path(path_type=Path),
    help="fusion: a recipe file of every training choice (the shipped model's: "
    "mingraph/data/recipes/fusion-default.json); options below win over it.",
)
@click.option("--crop", type=click.IntRange(1), help="fusion: crop size, px (default 128).")
@click.option("--batch-size", type=click.IntRange(1), help="fusion: items a step (default 4).")
@click.option(
    "--fraction-range", help="fusion: LOW,HIGH EDS fraction, log-uniform per item (default 0.005,0.05)."
)
@click.option("--draws", type=click.IntRange(1), help="fusion: items a field and epoch (default 1).")
@click.option(
    "--noise",
    type=click.Choice(["fresh", "fixed"]),
    help="fusion: fresh items every epoch (default), or the same draws every epoch.",
)
@click.option(
    "--lr", type=click.FloatRange(0, min_open=True), help="fusion: peak learning rate (default 0.003)."
)
@click.option("--seed", type=click.IntRange(0), help="fusion: initialisation and draws (default 0).")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="fusion: any recipe field (VALUE as JSON, e.g. schedule=constant, fraction_range=[0.01,0.05]).",
)
@click.option(
    "--arch",
    type=click.Choice(["paper", "fusion"]),
    default="paper",
    show_default=True,
    help="paper: the paper's GAT; fusion: the fusion model (a --recipe, or --online DATASET with a "
    "CNN --encoder).",
)
@user_errors
def train(
    shards,
    online,
    out,
    epochs,
    config,
    encoder,
    backend,
    device,
    resume,
    recipe,
    crop,
    batch_size,
    fraction_range,
    draws,
    noise,
    lr,
    seed,
    sets,
    arch,
) -> None:
    """Train the GAT on SHARDS (from build-graphs) or --online on a raw dataset; --arch fusion
    trains the fusion model from a recipe (mingraph/data/recipes/fusion-default.json)."""
    run = output_folder(out, "train", create=False)  # before any work: refused here, not after loading
    from mingraph.learn.trainers import TRAINERS

    settings = {
        "crop": crop,
        "batch_size": batch_size,
        "draws": draws,
        "noise": noise,
        "lr": lr,
        "seed": seed,
    }
    if fraction_range is not None:
        settings["fraction_range"] = parse_fractions(fraction_range)
    settings.update(_parse_settings(sets, settings))

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
        recipe=recipe,
        settings=settings,
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
    click.echo(f"{'method':<36}{'EDS %':>6}{'F1 tile-mean':>13}{'F1 pooled':>10}{'F1 macro':>9}{'ECE':>7}")
    for r in res["results"]:
        ece = "-" if r.get("ece") is None else f"{r['ece']:.3f}"
        click.echo(
            f"{r['method']:<36}{100 * r['fraction']:>6.2f}{r['tile_mean_f1']:>13.3f}{r['f1_weighted']:>10.3f}{r['f1_macro']:>9.3f}{ece:>7}"
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
    if any(r.get("ece") is not None for r in res["results"]):
        click.echo(
            "ECE: expected calibration error of the confidence (15 equal bins) over labelled pixels the "
            "method labels; unclassified pixels are left out (metrics.json: ece_unclassified)"
        )
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


@click.command("calibrate-model")
@click.argument("run", type=click.Path(path_type=Path))
@click.argument("dataset", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--method",
    type=click.Choice(["platt", "temperature"]),
    default="platt",
    show_default=True,
    help="platt: the top-label confidence's log-odds, a·logit(c) + b; temperature: softmax(log q / T) by NLL.",
)
@click.option(
    "--split", default="val", show_default=True, help="The fields fitted on (never the test fields)."
)
@click.option(
    "--fractions", default="0.01,0.05", show_default=True, help="EDS fractions the pixels are drawn at."
)
@click.option(
    "--patterns", default="random,grid", show_default=True, help="Point patterns pooled (grid: TIMA's dots)."
)
@click.option("--max-tiles", type=int, help="Fit on the first N fields of the split only.")
@user_errors
def calibrate_model(run, dataset, out, method, split, fractions, patterns, max_tiles) -> None:
    """Write a copy of RUN's fusion model whose confidence is calibrated on DATASET's labelled
    validation fields (a Platt map or a temperature in the file's meta; the weights unchanged)."""
    from mingraph.analyse.calibrate_model import calibrate_model as run_calibration

    pats = [p.strip() for p in patterns.split(",") if p.strip()]
    rec = run_calibration(
        run,
        dataset,
        check_artifact_output(out),
        method,
        split,
        parse_fractions(fractions),
        pats,
        max_fields=max_tiles,
    )
    how = (
        f"temperature {rec['temperature']:.4g}"
        if method == "temperature"
        else (f"Platt a {rec['platt']['a']:.4g}, b {rec['platt']['b']:.4g}")
    )
    click.echo(
        f"{how}: ECE {rec['ece_before']:.4f} -> {rec['ece_after']:.4f} on {rec['samples']} pixels of "
        f"{rec['fields']} {split} fields"
    )
    click.echo(f"wrote {rec['out']}")


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


@click.group("model")
def model_group() -> None:
    """Inspect model files."""


@model_group.command("info")
@click.argument("file", type=click.Path(path_type=Path))
@user_errors
def model_info(file) -> None:
    """Print what FILE (a model file or run folder) records of how it was made: the recipe, the
    code version and the data seeds, and say plainly what it does not record."""
    from mingraph.learn.bundle import model_info as info

    click.echo(info(file))


def _parse_settings(sets: tuple[str, ...], given: dict) -> dict:
    """``--set KEY=VALUE`` items as recipe keys (VALUE read as JSON, else as a string); a key also
    given by its own option is refused."""
    import json

    from mingraph.common.errors import InputError

    out: dict = {}
    for item in sets:
        key, eq, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or not key:
            raise InputError("--set", item, "expected KEY=VALUE (a recipe field, VALUE as JSON)")
        if given.get(key) is not None or key in out:
            raise InputError("--set", key, "given twice (by its own option or another --set)")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out
