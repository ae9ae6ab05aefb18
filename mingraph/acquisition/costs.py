"""What an EDS acquisition costs: a time model per point and the order the beam visits them.

An instrument's point-analysis mode measures a list of points one after another: for each it
moves the beam (electrostatic deflection inside one field; a stage move between fields), lets
it settle, and integrates the spectrum for a dwell time.  The model here is the sum

    t = n · (dwell + settle) + L / v_beam + n_rounds · round_overhead

with L the beam path length (µm) through the ordered points and v_beam the deflection speed.
The defaults are assumptions, not measurements of one instrument: 1.25 ms dwell (a TIMA/AMICS
"dot" spectrum of ~1–2 k counts), 20 µs settle, 100 µm/ms beam travel; every term is
configurable (``mingraph acquire --dwell-ms --settle-ms``).  The model's own inference time per
round is added by the session (:mod:`mingraph.acquisition.session`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from mingraph.common.errors import InputError


@dataclass(frozen=True)
class TimeModel:
    """Per-point acquisition costs in milliseconds (module docstring); all must be ≥ 0.

    ``dwell_ms`` spectrum integration per point; ``settle_ms`` beam settling per point;
    ``beam_um_per_ms`` beam deflection speed (µm per ms, > 0); ``round_overhead_ms`` a fixed cost
    per round (e.g. sending a new point list to the instrument).
    """

    dwell_ms: float = 1.25
    settle_ms: float = 0.02
    beam_um_per_ms: float = 100.0
    round_overhead_ms: float = 0.0

    def __post_init__(self) -> None:
        for name, v in asdict(self).items():
            if not np.isfinite(v) or v < 0:
                raise InputError("time model", name, f"expected a finite number ≥ 0, got {v!r}")
        if self.beam_um_per_ms <= 0:
            raise InputError("time model", "beam_um_per_ms", "expected a positive beam speed")

    def seconds(self, rc: np.ndarray, pixel_size_um: float, start: np.ndarray | None = None) -> float:
        """Seconds to measure the points ``rc`` (n, 2) row/col in this order, the beam starting at
        ``start`` (row, col) (default: the first point): dwell, settle, beam travel and one round's
        overhead.  ``pixel_size_um`` µm per pixel."""
        rc = np.asarray(rc, dtype=np.float64).reshape(-1, 2)
        if len(rc) == 0:
            return 0.0
        path = rc if start is None else np.vstack([np.asarray(start, np.float64).reshape(1, 2), rc])
        travel_um = float(np.hypot(*np.diff(path, axis=0).T).sum()) * float(pixel_size_um)
        ms = len(rc) * (self.dwell_ms + self.settle_ms) + travel_um / self.beam_um_per_ms
        return (ms + self.round_overhead_ms) / 1000.0


def serpentine_order(rc: np.ndarray, band: float) -> np.ndarray:
    """Indices that visit points ``rc`` (n, 2) in a boustrophedon: bands of ``band`` rows, left to
    right in even bands and right to left in odd ones (a short beam path, as an instrument's own
    point lists run).  Ties keep the input order (stable sort)."""
    rc = np.asarray(rc, dtype=np.int64).reshape(-1, 2)
    b = rc[:, 0] // max(1, int(round(band)))
    col = np.where(b % 2 == 0, rc[:, 1], -rc[:, 1])
    return np.lexsort((rc[:, 0], col, b))


def points_table(rc: np.ndarray, rounds: np.ndarray, pixel_size_um: float) -> list[list]:
    """The ordered point list an instrument's point-analysis mode takes, with a header row:
    ``order, round, row, col, x_um, y_um``; x/y are the pixel centres in µm from the field's
    top-left corner, y pointing down: x = (col + 0.5)·p, y = (row + 0.5)·p, p = ``pixel_size_um``."""
    rc = np.asarray(rc, dtype=np.int64).reshape(-1, 2)
    p = float(pixel_size_um)
    rows = [["order", "round", "row", "col", "x_um", "y_um"]]
    for i, ((r, c), k) in enumerate(zip(rc, np.asarray(rounds).reshape(-1))):
        rows.append([i, int(k), int(r), int(c), f"{(c + 0.5) * p:.10g}", f"{(r + 0.5) * p:.10g}"])
    return rows


def read_points_table(path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rc int64 (n, 2), rounds int64 (n,), xy_um float64 (n, 2)) from a :func:`points_table` CSV.
    Raises InputError naming the file when a column is missing or a value is not a number."""
    from mingraph.common.textfiles import read_table

    need = ("round", "row", "col", "x_um", "y_um")
    table = read_table(path, "points table")
    rows = table.rows
    if any(k not in table.header for k in need):
        raise InputError(path, "columns", f"expected the columns {', '.join(need)}")
    try:
        rc = np.array([[int(r["row"]), int(r["col"])] for r in rows], np.int64).reshape(-1, 2)
        rounds = np.array([int(r["round"]) for r in rows], np.int64)
    except ValueError as e:
        raise InputError(path, "points", f"expected integer row/col/round ({e})") from None
    xy = np.array(
        [[table.number(i, c, "a number in µm", True) for c in ("x_um", "y_um")] for i in range(len(rows))],
        np.float64,
    ).reshape(-1, 2)
    return rc, rounds, xy
