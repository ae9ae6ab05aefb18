"""The mineralogy settings of a run from the files its options name: the mineral list and assay
(read and checked) and the targets, as the keyword arguments of :func:`mingraph.workflows.predict.run_predict`
and :func:`mingraph.workflows.sample.predict_sample` (the click options are :mod:`mingraph.cli.mineralogy_options`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


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
    from mingraph.common.errors import InputError

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
