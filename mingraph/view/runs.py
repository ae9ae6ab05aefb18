"""Which run a folder holds, and its :class:`~mingraph.view.scene.Scene`: a predict output's field
(:func:`mingraph.view.scene.field_scene`) or a predict-sample output's mosaic
(:func:`mingraph.view.mosaic.sample_scene`)."""

from __future__ import annotations

import os
from pathlib import Path

from mingraph.common.errors import InputError
from mingraph.view.mosaic import sample_scene
from mingraph.view.scene import Scene, field_scene


def run_kind(run: str | os.PathLike) -> tuple[str, Path]:
    """("predict" | "sample", folder) of a run folder: a predict output, or a predict-sample output
    (its top folder or its ``sample/``)."""
    p = Path(run)
    if (p / "phase_map.tif").is_file() and (p / "legend.json").is_file():
        return "predict", p
    if (p / "run.json").is_file() and (p / "fields").is_dir():
        return "sample", p
    if p.name == "sample" and (p.parent / "run.json").is_file():
        return "sample", p.parent
    raise InputError(
        p, "run folder", "expected a predict output (phase_map.tif, legend.json) or a predict-sample output"
    )


def read_scene(run: str | os.PathLike) -> Scene:
    """The :class:`Scene` of a predict or predict-sample output folder."""
    kind, folder = run_kind(run)
    if kind == "sample":
        return sample_scene(folder)
    return field_scene(folder)
