"""Calculated assay and element deportment from modal mass % and mineral formulas; chemical assay files.

Calculated assay (the standard automated-mineralogy reconciliation, e.g. Lotter et al. 2011,
Minerals Engineering 24): element wt % = Σ_minerals mass % × mass fraction of the element in the
mineral (formulas parsed by xraylib). Deportment of an element: the share of it carried by each
mineral, mass % × mass fraction / element wt %. Only classes with a density *and* a formula take
part; the mass % they cover is reported (``covered_mass_pct``), and the others are named.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from mingraph.common.errors import InputError
from mingraph.common.textfiles import parse_number, read_table


def calculated_assay(mass_pct: np.ndarray, composition: np.ndarray) -> np.ndarray:
    """Element wt % = mass_pct @ composition.

    ``mass_pct`` (n_classes,) or (B, n_classes) mass % of each mineral (NaN = unknown, left out);
    ``composition`` (n_classes, n_elements) mass fractions. Returns (n_elements,) or (B, n_elements).
    """
    m = np.nan_to_num(np.asarray(mass_pct, dtype=np.float64))
    return m @ np.asarray(composition, dtype=np.float64)


def deportment(mass_pct: np.ndarray, composition: np.ndarray) -> np.ndarray:
    """(n_classes, n_elements) % of each element carried by each mineral (columns sum to 100 or 0)."""
    m = np.nan_to_num(np.asarray(mass_pct, dtype=np.float64))
    carried = m[:, None] * np.asarray(composition, dtype=np.float64)
    tot = carried.sum(axis=0, keepdims=True)
    return np.divide(100.0 * carried, tot, out=np.zeros_like(carried), where=tot > 0)


def _element_factor(name: str, where: str) -> tuple[str, float]:
    """(element, factor) so that element wt % = factor × value; for an oxide such as SiO2, the Si share."""
    import xraylib

    s = name.strip()
    try:
        return s, 1.0 if xraylib.SymbolToAtomicNumber(s) > 0 else math.nan
    except Exception:
        pass
    try:
        c = xraylib.CompoundParser(s)
    except Exception:
        raise InputError(
            where, "element", f"expected an element symbol or an oxide (e.g. Fe, SiO2), got {name!r}"
        ) from None
    zs = [int(z) for z in c["Elements"]]
    others = [i for i, z in enumerate(zs) if z != 8]
    if len(others) != 1 or len(zs) > 2:
        raise InputError(where, "element", f"expected an element or a simple oxide, got {name!r}")
    i = others[0]
    return xraylib.AtomicNumberToSymbol(zs[i]), float(c["massFractions"][i])


def read_assay(path: str | os.PathLike) -> dict[str, float]:
    """A chemical assay CSV: columns ``element`` (symbol, or a simple oxide such as SiO2, Fe2O3) and
    ``wt_pct``; oxides are converted to the element (× its mass fraction in the oxide, xraylib).
    Returns element -> wt %. Raises InputError naming the file, row and field.
    """
    path = Path(path)
    table = read_table(path, "assay")
    if not table.rows or not {"element", "wt_pct"} <= set(table.header):
        raise InputError(
            path, "header", f"expected CSV columns 'element' and 'wt_pct' (found {table.header})"
        )
    out: dict[str, float] = {}
    given: dict[str, str] = {}
    for i, r in enumerate(table.rows):
        where = f"{path} line {table.lines[i]}"
        name = (r.get("element") or "").strip()
        el, factor = _element_factor(name, where)
        try:
            v = parse_number(r.get("wt_pct") or "", table.delimiter)
        except ValueError:
            v = math.nan
        if not (math.isfinite(v) and 0 <= v <= 100):
            raise InputError(where, "wt_pct", f"expected a number in [0, 100], got {r.get('wt_pct')!r}")
        if el in out:
            also = "" if given[el] == name else f" (as {given[el]!r} and {name!r})"
            raise InputError(where, "element", f"{el} is given twice{also}")
        out[el], given[el] = v * factor, name
    return out


def assay_rows(
    elements: list[str],
    calc: np.ndarray,
    ci: np.ndarray | None = None,
    measured: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Table rows: element, calculated wt % (with its 95 % interval), measured, difference (calc − measured).

    Elements of ``measured`` that no mineral carries are listed with calculated 0 (the list lacks them).
    """
    measured = dict(measured or {})
    rows = []
    for j, el in enumerate(elements):
        m = measured.pop(el, None)
        rows.append(
            {
                "element": el,
                "calculated_wt_pct": float(calc[j]),
                "ci_low": None if ci is None else float(ci[0, j]),
                "ci_high": None if ci is None else float(ci[1, j]),
                "measured_wt_pct": m,
                "difference_wt_pct": None if m is None else float(calc[j]) - m,
                "relative_difference_pct": None if not m else 100.0 * (float(calc[j]) - m) / m,
            }
        )
    for el, m in measured.items():
        rows.append(
            {
                "element": el,
                "calculated_wt_pct": 0.0,
                "ci_low": None,
                "ci_high": None,
                "measured_wt_pct": m,
                "difference_wt_pct": -m,
                "relative_difference_pct": -100.0 if m else None,
            }
        )
    return rows
