"""``mingraph acquire``: run an adaptive acquisition session on a field and write what an
instrument and a mineralogist need: the final phase map, the ordered point list and the curve.

Files in OUT (the folder appears whole or not at all, :func:`mingraph.common.files.atomic_folder`):

* ``points.csv``: ``order, round, row, col, x_um, y_um`` in measurement order (pixel centres in
  µm from the top-left corner, :func:`mingraph.acquisition.costs.points_table`): the list an
  instrument's point-analysis mode is driven with;
* ``curve.csv`` / ``curve.json``: one row a round: points, fraction of valid pixels, mean
  confidence, weighted and macro F1 (when the field has labels), seconds choosing, measuring
  and in inference, and the cumulative acquisition minutes;
* ``phase_map.tif`` (palette TIFF with the pixel size), ``confidence.png``, ``overlay.png``
  (phases over BSE with the measured points) and ``summary.json`` (settings, stop reason).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mingraph.acquire.fields import Field
from mingraph.acquisition import Session, run_session
from mingraph.acquisition.costs import points_table
from mingraph.common.errors import InputError
from mingraph.common.files import write_csv
from mingraph.common.outputs import atomic_folder, check_new_output
from mingraph.learn.bundle import Bundle, point_record

CURVE_COLUMNS = (
    "round",
    "points",
    "fraction",
    "mean_confidence",
    "f1_weighted",
    "f1_macro",
    "choose_s",
    "measure_s",
    "inference_s",
    "minutes",
)


def field_for(
    dataset: str | os.PathLike | None, field_id: str | None, simulate: int | None, seed: int = 0
) -> Field:
    """The field a session runs on: ``dataset`` with ``field_id`` (its EDS source: a simulator,
    a hypermap, ...) or a simulated ``simulate``² field of ``seed``.  Raises InputError unless
    exactly one of the two is given."""
    if (dataset is None) == (simulate is None):
        raise InputError("acquire", "input", "give exactly one of DATASET --field ID or --simulate SIZE")
    if simulate is not None:
        from mingraph.acquire.simulate import simulate_tile

        if simulate < 16:
            raise InputError(
                "acquire", "--simulate", f"expected a field side of at least 16 px, got {simulate}"
            )
        return simulate_tile(seed, simulate).field(f"simulated-{simulate}-seed{seed}")
    from mingraph.acquire.dataset import open_dataset

    if field_id is None:
        raise InputError(dataset, "--field", "a dataset needs the field to acquire (--field ID or index)")
    ds = open_dataset(dataset)
    return ds.field(ds.find(field_id))


def write_session(
    out: Path, sample: Field, session: Session, bundle: Bundle, classifier: str | None = None
) -> None:
    """Write a session's files (module docstring) into the folder ``out``; summary.json records
    the point ``classifier`` and its fitted calibration (:func:`mingraph.learn.bundle.point_record`)."""
    from mingraph.analyse.mineralogy.minerals import class_minerals
    from mingraph.analyse.mineralogy.phasemap import write_phase_map
    from mingraph.analyse.plots import save_confidence_png, save_phase_overlay_png
    from mingraph.common.files import write_text

    cm = class_minerals(bundle.class_names)
    write_csv(out / "points.csv", points_table(session.points, session.rounds, sample.pixel_size_um))
    rows = [list(CURVE_COLUMNS)] + [[r.get(k, "") for k in CURVE_COLUMNS] for r in session.curve]
    write_csv(out / "curve.csv", rows)
    write_text(out / "curve.json", json.dumps(session.curve, indent=1) + "\n")
    write_phase_map(out / "phase_map.tif", session.maps.labels, cm.colours, sample.pixel_size_um)
    save_confidence_png(out / "confidence.png", session.maps.confidence, sample.valid)
    save_phase_overlay_png(
        out / "overlay.png",
        sample.bse,
        session.maps.labels,
        list(cm.names),
        session.points,
        colours=cm.colours,
    )
    summary = {
        "field": sample.name,
        "field_px": list(sample.shape),
        "pixel_size_um": sample.pixel_size_um,
        "points": int(len(session.points)),
        "budget_points": session.n_total,
        "stopped": session.stopped,
        "settings": session.settings,
        **(point_record(bundle, classifier) if classifier else {}),
        "final": session.curve[-1] if session.curve else {},
    }
    write_text(out / "summary.json", json.dumps(summary, indent=1, default=str) + "\n")


def run_acquire(
    out: str | os.PathLike,
    sample: Field,
    bundle: Bundle,
    budget: float,
    strategy: str,
    overwrite: bool = False,
    classifier: str | None = None,
    **kw,
) -> Session:
    """Run :func:`mingraph.acquisition.run_session` (keyword arguments ``kw``) and write its
    files into ``out`` atomically (``classifier``: the point classifier's name, for
    summary.json); an existing ``out`` is refused unless ``overwrite``."""
    out = check_new_output(out, overwrite)
    session = run_session(sample, bundle, budget, strategy, **kw)
    with atomic_folder(out, overwrite, kind="acquire") as tmp:
        write_session(tmp, sample, session, bundle, classifier)
    return session
