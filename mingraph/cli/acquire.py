"""``mingraph acquire``: an adaptive EDS acquisition session (mingraph/acquisition/outputs.py)."""

from __future__ import annotations

from pathlib import Path

import click

from mingraph.cli.common import classifier_options, user_errors

STRATEGY_NAMES = ("random", "grid", "segments", "bright", "uncertainty", "slads")


@click.command()
@click.argument("dataset", required=False, type=click.Path(path_type=Path))
@click.option("--field", "field_id", help="Field id or index in DATASET.")
@click.option("--simulate", "sim_size", type=int, help="Acquire a simulated SIZE×SIZE field instead.")
@click.option("--budget", type=float, required=True, help="Fraction of the valid pixels to measure at most.")
@click.option("--strategy", type=click.Choice(STRATEGY_NAMES), default="uncertainty", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option(
    "--model", type=click.Path(path_type=Path), help="Model file (default: the shipped fusion model)."
)
@click.option(
    "--rounds", type=click.IntRange(min=0), default=3, show_default=True, help="Rounds after the seed set."
)
@click.option(
    "--seed-fraction",
    type=float,
    default=0.4,
    show_default=True,
    help="Share of the budget measured in round 0 (the seed set).",
)
@click.option("--target-confidence", type=float, help="Stop once the mean confidence reaches this.")
@click.option("--dwell-ms", type=float, default=1.25, show_default=True, help="Spectrum dwell per point.")
@click.option("--settle-ms", type=float, default=0.02, show_default=True, help="Beam settling per point.")
@click.option("--beam-um-per-ms", type=float, default=100.0, show_default=True, help="Beam travel speed.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--overwrite", is_flag=True)
@click.option(
    "--minerals",
    type=click.Path(path_type=Path),
    help="Mineral list for the physics classifier (default: the shipped library).",
)
@classifier_options
@user_errors
def acquire(
    dataset,
    field_id,
    sim_size,
    budget,
    strategy,
    out,
    model,
    rounds,
    seed_fraction,
    target_confidence,
    dwell_ms,
    settle_ms,
    beam_um_per_ms,
    seed,
    overwrite,
    minerals,
    classifier,
    beam_kev,
) -> None:
    """Measure EDS where it helps most: seed points, then rounds of choose, measure, predict.

    DATASET --field ID (its EDS source stands in for the instrument) or --simulate SIZE.
    Writes points.csv (the ordered point list, µm), curve.csv/json, phase_map.tif and overlays.
    """
    from mingraph.acquisition.costs import TimeModel
    from mingraph.acquisition.outputs import field_for, run_acquire
    from mingraph.learn.bundle import load_model
    from mingraph.workflows.field_input import classify_with, measured_spectra
    from mingraph.workflows.predict import labels_in_model_classes

    tm = TimeModel(dwell_ms=dwell_ms, settle_ms=settle_ms, beam_um_per_ms=beam_um_per_ms)
    sample = field_for(dataset, field_id, sim_size, seed)
    notices: list[str] = []
    measured, params = measured_spectra(sample)
    chosen, bundle = classify_with(
        load_model(model),
        classifier,
        measured=measured,
        params=params,
        beam_kev=beam_kev,
        source=sample.name,
        minerals=minerals,
        say=notices.append,
    )
    sample, notes = labels_in_model_classes(sample, bundle)
    s = run_acquire(
        out,
        sample,
        bundle,
        budget,
        strategy,
        overwrite,
        rounds=rounds,
        seed_fraction=seed_fraction,
        seed=seed,
        time_model=tm,
        target_confidence=target_confidence,
        classifier=chosen,
    )
    last = s.curve[-1]
    f1 = f", F1 {last['f1_weighted']:.3f} (macro {last['f1_macro']:.3f})" if "f1_weighted" in last else ""
    for line in notes + notices:
        click.echo(line)
    click.echo(
        f"{len(s.points)} points ({last['fraction'] * 100:.2f} %) in {len(s.curve)} rounds, "
        f"{last['minutes']:.2f} min ({s.stopped}){f1}, classifier {chosen}; wrote {out}"
    )


def _numbers(value: str | None, option: str, kind: type) -> list | None:
    """Comma-separated numbers of ``option`` (None when not given); InputError naming the option."""
    from mingraph.common.errors import InputError

    if value is None:
        return None
    try:
        return [kind(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise InputError(
            "acquire-study", option, f"expected comma-separated {kind.__name__} numbers, got {value!r}"
        ) from None


@click.command("acquire-study")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--docs", type=click.Path(path_type=Path), help="Also write the figures into DOCS/img.")
@click.option("--size", type=int, default=128, show_default=True, help="Side of the held-out test fields.")
@click.option("--tiles", "n_tiles", type=int, default=4, show_default=True, help="Number of test fields.")
@click.option(
    "--seeds", help="Comma-separated simulator seeds of the test fields (instead of --tiles from 4242)."
)
@click.option(
    "--fractions",
    help="Comma-separated EDS fractions of the valid pixels, for the test and the larger fields "
    "(default: 0.001 to 0.05, the larger field 0.005 to 0.05).",
)
@click.option("--large", type=int, default=256, show_default=True, help="Side of the larger field (0: none).")
@click.option("--methods", help="Comma-separated methods to run or report (default: all).")
@click.option("--model", type=click.Path(path_type=Path), help="Model file (default: the shipped model).")
@user_errors
def acquire_study(out, docs, size, n_tiles, seeds, fractions, large, model, methods) -> None:
    """F1 against EDS points and acquisition minutes for every strategy (docs/results.md), beside
    nearest-EDS labelling of each strategy's own points."""
    import torch

    from mingraph.acquisition.study import (
        BUDGETS,
        LARGE_BUDGETS,
        LARGE_METHODS,
        METHODS,
        TEST_SEEDS,
        run_study,
    )

    torch.set_num_threads(1)
    chosen_seeds = (
        _numbers(seeds, "--seeds", int)
        if seeds is not None
        else range(TEST_SEEDS[0], TEST_SEEDS[0] + n_tiles)
    )
    budgets = _numbers(fractions, "--fractions", float)
    chosen = [m.strip() for m in methods.split(",") if m.strip()] if methods else list(METHODS)
    kw = dict(
        model=model,
        log=click.echo,
        methods=chosen,
        large_methods=[m for m in LARGE_METHODS if m in chosen],
        budgets=BUDGETS if budgets is None else budgets,
        large_budgets=LARGE_BUDGETS if budgets is None else budgets,
    )
    click.echo(f"wrote {run_study(out, docs, size, chosen_seeds, large, **kw)}")
