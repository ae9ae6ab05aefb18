"""The mineralogy options shared by commands that write a mineralogy report (``predict``).

Kept here so ``cli.py`` stays thin: :func:`mineralogy_options` adds ``--minerals``,
``--min-confidence``, ``--assay`` and ``--target``; :func:`mineralogy_kwargs` reads the files they
name and returns the keyword arguments of :func:`mingraph.predict.run_predict`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click


def mineralogy_options(f: Callable) -> Callable:
    """Add the mineralogy options to a click command (they arrive as keyword arguments)."""
    opts = [
        click.option(
            "--minerals",
            type=click.Path(path_type=Path),
            help="Mineral list (CSV/JSON: name, formula, density, colour, aliases); default: the shipped 50.",
        ),
        click.option(
            "--min-confidence",
            type=click.FloatRange(0, 1),
            default=0.5,
            show_default=True,
            help="Pixels below this confidence count as unclassified in every mineralogy table.",
        ),
        click.option(
            "--assay", type=click.Path(path_type=Path), help="Chemical assay CSV (element, wt_pct)."
        ),
        click.option("--target", "targets", multiple=True, help="Phase whose liberation to detail (repeat)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def mineralogy_kwargs(
    class_names: Sequence[str],
    minerals: Path | None = None,
    min_confidence: float = 0.5,
    assay: Path | None = None,
    targets: Sequence[str] = (),
) -> dict[str, Any]:
    """Read the mineral list and assay files (InputError naming file, row and field) into run_predict kwargs."""
    from mingraph.analyse.mineralogy.assay import read_assay
    from mingraph.analyse.mineralogy.minerals import class_minerals, read_mineral_list
    from mingraph.errors import InputError

    cm = (
        None
        if minerals is None
        else class_minerals(class_names, read_mineral_list(minerals), source=str(minerals))
    )
    known = {str(n).lower() for n in [*class_names, *(cm.names if cm else [])]}
    for t in targets:
        if t.lower() not in known:
            raise InputError("--target", "target", f"{t!r} is not a class of the model")
    return {
        "min_confidence": float(min_confidence),
        "minerals": cm,
        "assay": None if assay is None else read_assay(assay),
        "targets": list(targets) or None,
    }
