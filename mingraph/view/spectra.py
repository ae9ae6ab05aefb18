"""A clicked EDS point's spectrum, and the expected spectrum of its mineral when the physics
classified the run's points (at the instrument it recorded in ``point_classifier.json``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mingraph.common.errors import InputError

N_CHANNELS, CHANNEL_EV = 3000, 10.0


def channel_energies() -> np.ndarray:
    """(3000,) eV at the middle of each channel of the recorded 10 eV grid."""
    return (np.arange(N_CHANNELS) + 0.5) * CHANNEL_EV


@dataclass
class PointSpectraReader:
    """Point i of a scene -> its spectrum: from ``files[k]`` (a points.npz), row ``local[i]``;
    ``minerals[i]`` its mineral's name; ``physics`` the run's point_classifier.json record (or None)."""

    files: list[Path]
    file_of: np.ndarray  # (n,) index into files
    local: np.ndarray  # (n,) row in that file
    minerals: list[str]
    physics: dict | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def of_predict(cls, folder: Path, table: dict[str, np.ndarray]) -> PointSpectraReader:
        n = len(table["row"])
        rec = folder / "point_classifier.json"
        physics = json.loads(rec.read_text()) if rec.is_file() else None
        files = [folder / "points.npz"] if (folder / "points.npz").is_file() else []
        return cls(files, np.zeros(n, np.int64), np.arange(n), [str(m) for m in table["mineral"]], physics)

    def __len__(self) -> int:
        return len(self.minerals)

    def counts(self, i: int) -> np.ndarray | None:
        """(3000,) float64 counts of point ``i``; None when the run stored no spectra."""
        k = int(self.file_of[i])
        if k < 0 or not self.files or not self.files[k].is_file():
            return None
        if k not in self._cache:
            with np.load(self.files[k]) as z:
                self._cache[k] = {a: np.asarray(z[a]) for a in ("ptr", "channel", "count")}
        z, j = self._cache[k], int(self.local[i])
        a, b = int(z["ptr"][j]), int(z["ptr"][j + 1])
        out = np.zeros(N_CHANNELS, np.float64)
        out[z["channel"][a:b].astype(np.int64)] = z["count"][a:b]
        return out


def expected_of(physics: dict | None, mineral: str) -> np.ndarray | None:
    """(3000,) the expected spectrum (sum 1) of ``mineral`` at the recorded calibration of a physics
    run, or None (no physics record, a mineral list no longer on disk, a name not in it)."""
    if not physics or physics.get("classifier") != "physics" or not physics.get("calibration"):
        return None
    from mingraph.spectra.calibrate import Instrument
    from mingraph.spectra.library_view import expected_spectrum, find_mineral
    from mingraph.spectra.mineral_library import read_library

    source = physics.get("minerals", "shipped library")
    path = None if source == "shipped library" else source
    if path is not None and not Path(path).is_file():
        return None
    try:
        m = find_mineral(read_library(path), mineral)
        return expected_spectrum(m, Instrument(**physics["calibration"]["instrument"]))
    except InputError:
        return None


def point_spectrum(points: PointSpectraReader, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(energy_ev (3000,), counts (3000,), expected (3000,) scaled to the point's counts, or None)
    of point ``i`` of a scene.  Raises InputError when the run stored no point spectra."""
    if not 0 <= int(i) < len(points):
        raise InputError("EDS points", "index", f"point {i} of {len(points)}")
    y = points.counts(int(i))
    if y is None:
        raise InputError("points.npz", "spectra", "this run stored no point spectra (predict it again)")
    e = expected_of(points.physics, points.minerals[int(i)])
    return channel_energies(), y, None if e is None else e * y.sum()


def draw_spectrum(ax, energy_ev, counts, expected, title: str) -> None:
    """Draw a point's counts (and its mineral's expected spectrum) against keV on ``ax``."""
    kev = np.asarray(energy_ev) / 1000.0
    ax.clear()
    ax.step(kev, counts, where="mid", lw=0.8, color="0.2", label="measured")
    if expected is not None:
        ax.plot(kev, expected, lw=1.0, color="tab:red", label="expected (physics)")
    ax.set_xlim(0, 12)
    ax.set_xlabel("energy (keV)")
    ax.set_ylabel("counts")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
