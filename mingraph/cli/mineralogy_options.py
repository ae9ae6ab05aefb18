"""The mineralogy options of commands that write a mineralogy report (``predict``, ``predict-sample``).

:func:`mineralogy_options` adds ``--minerals``, ``--min-confidence``, ``--assay`` and
``--target``; :func:`mingraph.analyse.mineralogy.run_options.mineralogy_kwargs` reads the files
they name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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
