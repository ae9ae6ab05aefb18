"""Mineral lists that carry the physics: single phases, and solid-solution series over a composition range.

A library entry is one class the physics classifier can return.  It is either one formula, or a
series: end members (each a name and a formula) with the range of compositions the class spans,
as bounds on the mole fraction of chosen end members.  Biotite, say, spans annite and phlogopite
with phlogopite between 1/3 and 2/3; annite and phlogopite are the classes either side.

The shipped library (``mingraph/data/mineral_library.csv``) holds common rock-forming, ore and
gangue minerals under their IMA names (varieties, polymorphs that EDS cannot tell apart, and
vendor names are aliases), with densities (g/cm³, Anthony et al., *Handbook of Mineralogy*, and
mindat.org) and display colours.  Its columns:

- ``name`` (unique), ``group`` (e.g. ``mica``, ``garnet``), ``formula`` (xraylib syntax, for a
  single phase) *or* ``end_members`` (``annite=KFe3AlSi3O10(OH)2;phlogopite=KMg3AlSi3O10(OH)2``),
- ``range`` (``phlogopite=0.33-0.67``: bounds on end-member mole fractions, default 0-1 each),
- ``density``, ``colour`` (``#rrggbb``), ``aliases`` (``;``-separated).

The plain mineral lists ``--minerals`` reads (``name, formula, density, colour, aliases``) are
libraries too: every entry is a single phase.  A composition is a mole fraction per end member;
its mass fractions weight the end members' element mass fractions by formula mass.
"""

from __future__ import annotations

import csv
import itertools
import math
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import xraylib

from mingraph.common.errors import InputError

LIBRARY_FILE = Path(__file__).resolve().parents[1] / "data" / "mineral_library.csv"
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
GRID_STEPS = {1: 1, 2: 10, 3: 5, 4: 6}
"""Lattice steps per unit of mole fraction for a series of k end members (k >= 5 uses 3): the
composition grid the classifier screens before it refines."""


@dataclass(frozen=True)
class LibraryMineral:
    """One class: ``end_members`` ((name, formula), ...) with mole-fraction ``bounds`` ((lo, hi), ...).

    A single phase has one end member (its own name and formula) with bounds (1, 1).
    """

    name: str
    end_members: tuple[tuple[str, str], ...]
    bounds: tuple[tuple[float, float], ...]
    group: str = ""
    density: float | None = None
    colour: str | None = None
    aliases: tuple[str, ...] = ()

    @property
    def is_series(self) -> bool:
        """True for a solid solution (more than one end member)."""
        return len(self.end_members) > 1

    @property
    def formula(self) -> str | None:
        """The formula of a single phase; None for a series."""
        return None if self.is_series else self.end_members[0][1]

    def grid(self) -> np.ndarray:
        """(g, k) float64 mole fractions: the lattice points of the series' range (rows sum to 1).

        >>> m = LibraryMineral("x", (("a", "SiO2"), ("b", "GeO2")), ((0.0, 0.5), (0.5, 1.0)))
        >>> m.grid()[:, 0].tolist()
        [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
        """
        return composition_grid(self.bounds)


@cache
def formula_mass_fractions(formula: str) -> tuple[dict[int, float], float]:
    """({Z: mass fraction}, molar mass in g/mol) of a formula, parsed by ``xraylib.CompoundParser``.

    Raises
    ------
    InputError
        When xraylib cannot parse the formula.

    Examples
    --------
    >>> w, m = formula_mass_fractions("SiO2")
    >>> round(w[14], 4), round(m, 2)
    (0.4675, 60.09)
    """
    try:
        c = xraylib.CompoundParser(str(formula))
    except Exception:
        raise InputError("mineral library", "formula", f"xraylib cannot parse {formula!r}") from None
    w = {int(z): float(f) for z, f in zip(c["Elements"], c["massFractions"])}
    return w, float(c["molarMass"])


def composition_grid(bounds: tuple[tuple[float, float], ...], step: int | None = None) -> np.ndarray:
    """(g, k) lattice points x (rows sum to 1, step 1/``step``) with lo_i <= x_i <= hi_i.

    ``step`` defaults to ``GRID_STEPS`` by k.  A point within 1e-9 of a bound counts as inside.
    When no lattice point lies inside (a narrow range), the range's centre is used alone.

    Examples
    --------
    >>> composition_grid(((0.0, 1.0), (0.0, 1.0)), step=2).tolist()
    [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]]
    """
    k = len(bounds)
    s = step or GRID_STEPS.get(k, 3)
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    pts = [c for c in itertools.product(range(s + 1), repeat=k - 1) if sum(c) <= s]
    x = np.array([[*c, s - sum(c)] for c in pts], dtype=np.float64) / s
    keep = np.all((x >= lo - 1e-9) & (x <= hi + 1e-9), axis=1)
    if not keep.any():
        mid = np.clip((lo + hi) / 2, lo, hi)
        return (mid / mid.sum())[None, :]
    return x[keep]


def mass_composition(minr: LibraryMineral, x: np.ndarray) -> tuple[np.ndarray, dict[int, float]]:
    """End-member mass weights (k,) and element mass fractions {Z: w} of mole fractions ``x`` (k,).

    The mass weight of end member i is x_i M_i / Σ x_j M_j (M the molar mass of its formula).

    >>> m = LibraryMineral("x", (("q", "SiO2"), ("c", "CO2")), ((0, 1), (0, 1)))
    >>> mw, w = mass_composition(m, np.array([0.5, 0.5]))
    >>> round(float(mw[0]), 3), round(float(w[8]), 3)
    (0.577, 0.615)
    """
    parts = [formula_mass_fractions(f) for _, f in minr.end_members]
    mass = np.asarray(x, dtype=np.float64) * np.array([m for _, m in parts])
    mw = mass / mass.sum()
    out: dict[int, float] = {}
    for wi, (comp, _) in zip(mw, parts):
        for z, f in comp.items():
            out[z] = out.get(z, 0.0) + wi * f
    return mw, out


def _parse_pairs(text: str, where: str, field: str) -> list[tuple[str, str]]:
    out = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        if "=" not in part:
            raise InputError(where, field, f"expected name=value;name=value, got {part!r}")
        a, b = (s.strip() for s in part.split("=", 1))
        if not a or not b:
            raise InputError(where, field, f"expected name=value, got {part!r}")
        out.append((a, b))
    return out


def library_entry(raw: dict, where: str = "mineral library") -> LibraryMineral:
    """A LibraryMineral from one row (a dict of the columns in the module docstring).

    Raises
    ------
    InputError
        Naming ``where`` and the column: no name, no formula and no end members, an unparseable
        formula, a bad range (outside 0-1, lo > hi, an unknown end member, bounds no composition
        meets), a non-positive density, a colour that is not ``#rrggbb``.
    """

    def text(key: str) -> str:
        v = raw.get(key)
        return "" if v is None else str(v).strip()

    name = text("name")
    if not name:
        raise InputError(where, "name", "expected a mineral name")
    where = f"{where} ({name})"
    if text("end_members"):
        ems = tuple(_parse_pairs(text("end_members"), where, "end_members"))
    elif text("formula"):
        ems = ((name, text("formula")),)
    else:
        raise InputError(where, "formula", "expected a formula or end_members")
    for _, f in ems:
        try:
            formula_mass_fractions(f)
        except InputError:
            raise InputError(where, "formula", f"xraylib cannot parse {f!r} (e.g. 'Ca5(PO4)3F')") from None
    names = [n for n, _ in ems]
    if len(set(names)) != len(names):
        raise InputError(where, "end_members", "an end member is named twice")
    bounds = {n: (0.0, 1.0) for n in names} if len(ems) > 1 else {names[0]: (1.0, 1.0)}
    for em, rng in _parse_pairs(text("range"), where, "range"):
        if em not in bounds:
            raise InputError(where, "range", f"{em!r} is not an end member ({', '.join(names)})")
        try:
            lo, hi = (float(v) for v in rng.split("-"))
        except ValueError:
            raise InputError(where, "range", f"expected lo-hi mole fractions, got {rng!r}") from None
        if not (0.0 <= lo <= hi <= 1.0):
            raise InputError(where, "range", f"expected 0 <= lo <= hi <= 1, got {rng!r}")
        bounds[em] = (lo, hi)
    b = tuple(bounds[n] for n in names)
    if sum(x[0] for x in b) > 1 + 1e-9 or sum(x[1] for x in b) < 1 - 1e-9:
        raise InputError(where, "range", "no composition meets these bounds (fractions must sum to 1)")
    dens = text("density")
    density = None
    if dens:
        try:
            density = float(dens)
        except ValueError:
            density = math.nan
        if not (math.isfinite(density) and density > 0):
            raise InputError(where, "density", f"expected a positive density in g/cm³, got {dens!r}")
    colour = text("colour") or text("color")
    if colour and not _HEX.match(colour):
        raise InputError(where, "colour", f"expected #rrggbb, got {colour!r}")
    al = raw.get("aliases") or ()
    al = al.split(";") if isinstance(al, str) else al
    aliases = tuple(a.strip() for a in map(str, al) if a.strip())
    return LibraryMineral(name, ems, b, text("group"), density, colour.lower() or None, aliases)


def check_names(entries: list[LibraryMineral], source: object) -> None:
    """Raise InputError when a name or alias names two entries (case and spaces ignored)."""
    seen: dict[str, str] = {}
    for e in entries:
        for key in (e.name, *e.aliases):
            k = key.strip().lower()
            if k in seen and seen[k] != e.name:
                raise InputError(source, "name", f"{key!r} names both {seen[k]!r} and {e.name!r}")
            seen[k] = e.name


def read_library(path: str | os.PathLike | None = None) -> list[LibraryMineral]:
    """Read a mineral library or a plain mineral list (CSV, or JSON as ``--minerals`` reads it).

    Parameters
    ----------
    path
        The file; None reads the shipped library.

    Returns
    -------
    list of LibraryMineral, in file order.

    Raises
    ------
    InputError
        Naming the file, the row and the column (see :func:`library_entry`); also for a missing or
        empty file and a name or alias given twice.

    Examples
    --------
    >>> lib = read_library()
    >>> len(lib) >= 150, next(m for m in lib if m.name == "biotite").bounds
    (True, ((0.0, 1.0), (0.33, 0.67)))
    """
    import json

    p = LIBRARY_FILE if path is None else Path(path)
    if not p.is_file():
        raise InputError(p, "mineral library", "file not found")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(p, "mineral library", f"unreadable ({type(e).__name__})") from None
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as e:
            raise InputError(p, "mineral library", f"invalid JSON ({e})") from None
        rows = data.get("minerals") if isinstance(data, dict) else data
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise InputError(p, "minerals", "expected a list of objects with 'name' and 'formula'")
    else:
        rows = list(csv.DictReader(text.splitlines()))
        if not rows or "name" not in rows[0]:
            raise InputError(p, "header", "expected a CSV with columns name, formula (or end_members), ...")
    out = [library_entry(r, f"{p} row {i + 1}") for i, r in enumerate(rows)]
    if not out:
        raise InputError(p, "mineral library", "no minerals in the file")
    check_names(out, p)
    return out


def simulator_library() -> list[LibraryMineral]:
    """The simulator's 50 minerals as single-phase entries, in class-id order.

    >>> [m.name for m in simulator_library()][:3]
    ['quartz', 'albite', 'microcline']
    """
    from mingraph.acquire.simulate.minerals import MINERALS

    return [
        LibraryMineral(m.name, ((m.name, m.formula),), ((1.0, 1.0),), density=m.density) for m in MINERALS
    ]


def validate_library(entries: list[LibraryMineral]) -> list[str]:
    """Problems a library has that reading it does not refuse: a list of sentences (empty = none).

    Reported: two classes that share a composition (their grids meet at a point, so the physics
    cannot tell them apart there); a series whose range is a single point; an entry without a
    density (no mass % for it).

    >>> a = LibraryMineral("a", (("a", "SiO2"),), ((1.0, 1.0),), density=2.65)
    >>> validate_library([a, LibraryMineral("b", (("b", "SiO2"),), ((1.0, 1.0),), density=2.6)])
    ['a and b share a composition (O 53.3, Si 46.7 wt %): the physics cannot separate them']
    """
    problems = []
    seen: dict[tuple, str] = {}
    for e in entries:
        g = e.grid()
        if e.is_series and len(g) == 1:
            problems.append(f"{e.name}: its range is a single composition")
        if e.density is None:
            problems.append(f"{e.name}: no density (mass % will leave it out)")
        for x in g:
            _, w = mass_composition(e, x)
            key = tuple(sorted((z, round(f, 3)) for z, f in w.items() if f > 1e-4))
            if key in seen and seen[key] != e.name:
                desc = ", ".join(f"{xraylib.AtomicNumberToSymbol(z)} {100 * f:.1f}" for z, f in key)
                problems.append(
                    f"{seen[key]} and {e.name} share a composition ({desc} wt %): "
                    "the physics cannot separate them"
                )
                break
            seen.setdefault(key, e.name)
    return problems
