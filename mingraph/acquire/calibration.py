"""Energy calibrations: put spectra of any offset, channel width and channel count on mingraph's grid.

mingraph's grid is ``N_CHANNELS`` (3000) channels of ``CHANNEL_EV`` (10 eV) from 0 eV; channel j
covers [10 j, 10 (j + 1)) eV.  An instrument writes its own: Bruker maps start near -0.47 keV with
channels of 9.996-10.001 eV (or 4096 channels of 20 eV), EMSA files any offset and width, HyperSpy
files may give the energy of every channel explicitly.

Convention: the energy an axis gives for channel k (``offset + k * scale``, or the k-th explicit
value) is the channel's lower edge, so a spectrum of 10 eV channels from 0 eV *is* the grid and is
kept unchanged.  (HyperSpy plots the value at the channel's centre; the difference is half a
channel, 5 eV, well inside an EDS detector's ~130 eV resolution.)

Rebinning redistributes each source channel's counts linearly by overlap: a source channel
[a, b) gives the fraction |[a, b) ∩ [10 j, 10 j + 10)| / (b - a) of its counts to grid channel j
(counts spread uniformly within a channel; e.g. Press et al., Numerical Recipes, "flux-conserving
rebinning").  It is computed as the difference of the cumulative counts, interpolated linearly at
the grid's edges.  Integer counts stay integers: the cumulative counts are rounded at each grid
edge before differencing, so every grid channel is within one count of the exact share and the
total is exact.  Counts below 0 eV (the detector's zero peak) and above 30 keV have no grid
channel: they are counted in the calibration record, and a spectrum with most of its counts
outside 0-30 keV is refused (its axis is almost certainly wrong).
"""

from __future__ import annotations

import numpy as np

from mingraph.acquire.fields import CHANNEL_EV, N_CHANNELS
from mingraph.common.errors import InputError

GRID_EDGES_EV = np.arange(N_CHANNELS + 1, dtype=np.float64) * CHANNEL_EV
"""The (3001,) channel edges of mingraph's grid in eV."""
UNIT_EV = {"kev": 1000.0, "ev": 1.0}


def unit_factor(units: object, source: object, field: str = "energy axis") -> float:
    """eV per unit of an energy axis: 1000 for keV, 1 for eV (also inside text such as
    "Energy Loss (eV)"); InputError otherwise."""
    import re

    text = str(units if units is not None else "").strip()
    found = {m.lower() for m in re.findall(r"(?<![A-Za-z])(keV|eV)(?![A-Za-z])", text, flags=re.I)}
    if len(found) != 1:
        raise InputError(source, field, f"expected units keV or eV, got {text!r}")
    return UNIT_EV[found.pop()]


def axis_edges(axis: dict, n: int, source: object) -> np.ndarray:
    """The (n + 1,) channel edges in eV of an energy axis given as rsciio gives it.

    ``axis`` holds ``units`` and either ``offset`` and ``scale`` (uniform) or ``axis`` (the
    explicit energy of every channel, HyperSpy's non-uniform axis).  Explicit values must increase;
    the last channel is as wide as the one before it.  Raises InputError naming ``source``.
    """
    factor = unit_factor(axis.get("units"), source)
    if axis.get("axis") is not None:
        try:
            v = np.asarray(axis["axis"], dtype=np.float64) * factor
        except (TypeError, ValueError):
            raise InputError(source, "energy axis", "explicit channel energies are not numbers") from None
        if v.ndim != 1 or v.size != n:
            raise InputError(source, "energy axis", f"expected {n} channel energies, got shape {v.shape}")
        if n < 2:
            raise InputError(source, "energy axis", "one explicit energy gives no channel width")
        if not np.isfinite(v).all():
            raise InputError(source, "energy axis", "NaN or infinite channel energies")
        step = np.diff(v)
        if (step <= 0).any():
            k = int(np.flatnonzero(step <= 0)[0]) + 1
            raise InputError(
                source,
                "energy axis",
                f"channel energies must increase: channel {k} is at {v[k]:g} eV after {v[k - 1]:g} eV",
            )
        return np.append(v, v[-1] + step[-1])
    try:
        scale, offset = float(axis.get("scale")), float(axis.get("offset", 0.0))
    except (TypeError, ValueError):
        raise InputError(
            source, "energy axis", f"scale {axis.get('scale')!r} / offset {axis.get('offset')!r} not numbers"
        ) from None
    if not (np.isfinite(scale) and np.isfinite(offset) and scale > 0):
        raise InputError(
            source, "energy axis", f"expected a positive channel width, got {scale * factor:g} eV"
        )
    return offset * factor + scale * factor * np.arange(n + 1, dtype=np.float64)


def is_grid(edges: np.ndarray) -> bool:
    """True when ``edges`` are the grid's first len(edges) edges (within 1e-6 of a channel)."""
    k = edges.size
    return k <= N_CHANNELS + 1 and bool(np.allclose(edges, GRID_EDGES_EV[:k], rtol=0, atol=1e-6 * CHANNEL_EV))


def describe(edges: np.ndarray) -> dict:
    """A JSON-able record of a calibration: channels, offset and width (or their range), in eV."""
    w = np.diff(edges)
    uniform = bool(np.allclose(w, w[0], rtol=1e-6))
    rec = {"channels": int(w.size), "offset_ev": float(edges[0])}
    if uniform:
        rec["channel_ev"] = float(w.mean())
    else:
        rec["explicit_axis"] = True
        rec["channel_ev_min"], rec["channel_ev_max"] = float(w.min()), float(w.max())
    return rec


def _cumulative_at(counts: np.ndarray, edges: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Cumulative counts (..., len(at)) at energies ``at``, linear within each source channel."""
    n = edges.size - 1
    cum = np.zeros(counts.shape[:-1] + (n + 1,), np.float64)
    np.cumsum(counts, axis=-1, dtype=np.float64, out=cum[..., 1:])
    k = np.clip(np.searchsorted(edges, at, side="right") - 1, 0, n - 1)
    frac = np.clip((at - edges[k]) / (edges[k + 1] - edges[k]), 0.0, 1.0)
    return cum[..., k] + frac * (cum[..., k + 1] - cum[..., k])


def to_grid(
    counts: np.ndarray,
    edges: np.ndarray,
    source: object,
    field: str = "spectra",
    rows_per_chunk: int = 512,
    check_outside: bool = True,
) -> tuple[np.ndarray, dict]:
    """Spectra (..., n) with channel edges (n + 1,) eV -> (spectra (..., 3000), calibration record).

    Integer counts come back as the smallest unsigned integer dtype that holds them (uint8, uint16
    or uint32, range-checked), float counts as float32.  The record (``describe`` plus
    ``rebinned``, ``counts_total``, ``counts_below_0_ev``, ``counts_above_grid``) says what was
    done.  Raises InputError when most counts fall outside 0-30 keV or the axis does not reach the
    grid at all.
    """
    a = np.asarray(counts)
    n = a.shape[-1]
    if edges.shape != (n + 1,):
        raise InputError(source, "energy axis", f"{edges.size - 1} channel energies for {n} channels")
    rec = describe(edges)
    top = GRID_EDGES_EV[-1]
    if edges[-1] <= 0 or edges[0] >= top:
        raise InputError(
            source,
            "energy axis",
            f"the channels cover {edges[0]:g} to {edges[-1]:g} eV, outside mingraph's 0-{top:g} eV",
        )
    integer = np.issubdtype(a.dtype, np.integer)
    if is_grid(edges):
        out = a if n == N_CHANNELS else _pad(a)
        rec.update(rebinned=False, counts_below_0_ev=0, counts_above_grid=0)
        total = float(a.sum(dtype=np.float64))
    else:
        flat = a.reshape(-1, n)
        # written chunk by chunk into the output: memory is the output plus one chunk
        res = np.empty((flat.shape[0], N_CHANNELS), np.uint32 if integer else np.float32)
        below = above = total = 0.0
        for i in range(0, flat.shape[0], rows_per_chunk):
            c = _cumulative_at(flat[i : i + rows_per_chunk], edges, GRID_EDGES_EV)
            if integer:
                c = np.round(c)
                if c[:, -1].max(initial=0) > np.iinfo(np.uint32).max:
                    raise InputError(source, field, "a spectrum holds more than 2**32 - 1 counts")
            res[i : i + rows_per_chunk] = np.diff(c, axis=-1)
            tot = flat[i : i + rows_per_chunk].sum(dtype=np.float64)
            below += float(c[:, 0].sum())
            above += float(tot - c[:, -1].sum())
            total += float(tot)
        out = res.reshape(a.shape[:-1] + (N_CHANNELS,))
        rec.update(rebinned=True, counts_below_0_ev=below, counts_above_grid=above)
        if check_outside:
            check_inside(rec | {"counts_total": total}, edges, source)
    rec["counts_total"] = total
    if integer:
        out = np.asarray(out)
        hi = int(out.max()) if out.size else 0
        if out.size and out.min() < 0:
            raise InputError(source, field, f"negative counts (minimum {out.min()})")
        dtype = next(t for t in (np.uint8, np.uint16, np.uint32, np.uint64) if hi <= np.iinfo(t).max)
        return out.astype(dtype, copy=out.dtype != dtype), rec
    return np.asarray(out, dtype=np.float32), rec


def check_inside(rec: dict, edges: np.ndarray, source: object) -> None:
    """Refuse a calibration that puts most counts outside 0-30 keV (the axis must be wrong)."""
    total = rec.get("counts_total") or 0.0
    out = rec.get("counts_below_0_ev", 0.0) + rec.get("counts_above_grid", 0.0)
    if total > 0 and out > 0.5 * total:
        raise InputError(
            source,
            "energy axis",
            f"{100 * out / total:.0f} % of the counts lie outside 0-{GRID_EDGES_EV[-1] / 1000:g} keV "
            f"(channels from {edges[0]:g} eV, {rec.get('channel_ev', 'varying'):} eV wide): check the axis",
        )


def _pad(a: np.ndarray) -> np.ndarray:
    """Spectra on the grid's first n < 3000 channels, zero-padded to 3000 (no counts added)."""
    pad = np.zeros(a.shape[:-1] + (N_CHANNELS - a.shape[-1],), dtype=a.dtype)
    return np.concatenate([a, pad], axis=-1)


def summary_line(rec: dict) -> str:
    """One line for the user: what calibration a file had and what the import did with it."""
    if "channels" not in rec:  # several files, each with its own axis
        axis = f"{rec.get('files', 'several')} spectrum files"
    elif "channel_ev" in rec:
        axis = f"{rec['channels']} channels of {rec['channel_ev']:.4g} eV from {rec['offset_ev']:.4g} eV"
    else:
        axis = (
            f"{rec['channels']} channels of {rec['channel_ev_min']:.4g}-{rec['channel_ev_max']:.4g} eV "
            f"(explicit axis) from {rec['offset_ev']:.4g} eV"
        )
    if not rec.get("rebinned"):
        return f"energy axis: {axis}: already mingraph's 10 eV grid from 0 eV, kept as is"
    tot = rec.get("counts_total") or 0.0
    pct = (lambda x: 100.0 * x / tot) if tot else (lambda x: 0.0)
    return (
        f"energy axis: {axis}: rebinned to {N_CHANNELS} x {CHANNEL_EV:g} eV from 0 eV conserving counts; "
        f"{pct(rec['counts_below_0_ev']):.2f} % of them lie below 0 eV (the zero peak) and "
        f"{pct(rec['counts_above_grid']):.2f} % above {GRID_EDGES_EV[-1] / 1000:g} keV, outside the grid"
    )
