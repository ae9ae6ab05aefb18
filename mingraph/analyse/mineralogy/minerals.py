"""Mineral lists: the names, formulas, densities and colours a mineralogy report uses.

A mineral list is a CSV or JSON file with one entry per mineral:

- ``name`` (required, unique), ``formula`` (xraylib syntax, e.g. ``Al2Si2O5(OH)4``; optional),
  ``density`` (g/cm³; optional), ``colour`` (``#rrggbb``; optional), ``aliases`` (other names the
  classifier may use; ``;``-separated in CSV, a list in JSON; optional).
- CSV: a header row with those columns. JSON: a list of objects, or ``{"minerals": [...]}``.
  Read by :mod:`mingraph.common.textfiles` (UTF-8 with or without a BOM, delimiter ``,`` ``;`` or tab,
  decimal commas in a ``;`` file; quote an aliases cell there). A name or alias given twice
  (case and surrounding spaces ignored) is refused.

The classes of a model are matched to entries by name or alias (case and surrounding spaces
ignored). A class with no entry, or an entry without a density or formula, gets none: mass %,
assay and deportment leave it out and say so; nothing is guessed. The default list
(``mingraph/data/minerals.csv``) is the simulator's 50-mineral library
(:mod:`mingraph.acquire.simulate.minerals`, densities from the Handbook of Mineralogy) with the
phase colours of :func:`mingraph.analyse.plots.phase_colours`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mingraph.common.errors import InputError
from mingraph.common.textfiles import parse_number, read_json_input, read_table
from mingraph.spectra.mineral_groups import mix_formula

DEFAULT_LIST = Path(__file__).resolve().parents[2] / "data" / "minerals.csv"
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class MineralEntry:
    """One mineral of a list: density in g/cm³ (None = unknown), formula (None = unknown), colour ``#rrggbb``."""

    name: str
    formula: str | None = None
    density: float | None = None
    colour: str | None = None
    aliases: tuple[str, ...] = ()


@dataclass
class ClassMinerals:
    """What a list says about each class of a phase map, in class-id order.

    ``densities`` (n,) float64 g/cm³, NaN where unknown; ``elements`` the element symbols present in
    any known formula (by Z); ``composition`` (n, n_elements) mass fractions (rows of classes without
    a formula are all zero); ``colours`` (n, 3) RGB in 0..1; ``missing`` class names without an entry,
    ``no_density`` / ``no_formula`` those whose entry lacks one.
    """

    names: list[str]
    densities: np.ndarray
    formulas: list[str | None]
    colours: np.ndarray
    elements: list[str]
    composition: np.ndarray
    missing: list[str] = field(default_factory=list)
    no_density: list[str] = field(default_factory=list)
    no_formula: list[str] = field(default_factory=list)
    source: str = "default"

    @property
    def has_density(self) -> np.ndarray:
        """(n,) bool: the class has a density."""
        return np.isfinite(self.densities)

    @property
    def has_formula(self) -> np.ndarray:
        """(n,) bool: the class has a parsed formula."""
        return np.array([f is not None for f in self.formulas], dtype=bool)


def formula_composition(formula: str, where: str = "formula") -> dict[str, float]:
    """Element symbol -> mass fraction of a formula, parsed by ``xraylib.CompoundParser``.

    Raises InputError (naming ``where``) for a formula xraylib cannot parse.
    """
    import xraylib

    try:
        c = xraylib.CompoundParser(str(formula))
    except Exception:
        raise InputError(
            where, "formula", f"xraylib cannot parse {formula!r} (e.g. 'FeS2', 'Ca5(PO4)3F')"
        ) from None
    return {xraylib.AtomicNumberToSymbol(int(z)): float(w) for z, w in zip(c["Elements"], c["massFractions"])}


def _entry(raw: dict, where: str, delimiter: str | None = None) -> MineralEntry:
    def text(key: str) -> str | None:
        v = raw.get(key)
        if v is None:
            return None
        v = str(v).strip()
        return v or None

    name = text("name")
    if name is None:
        raise InputError(where, "name", "expected a mineral name")
    formula = text("formula")
    if formula is not None:
        formula_composition(formula, f"{where} ({name})")
    dens = raw.get("density")
    density = None
    if dens is not None and str(dens).strip() != "":
        try:
            density = parse_number(dens, delimiter) if isinstance(dens, str) else float(dens)
        except (TypeError, ValueError):
            density = math.nan
        if not (math.isfinite(density) and density > 0):
            raise InputError(where, "density", f"{name}: expected a positive density in g/cm³, got {dens!r}")
    colour = text("colour") or text("color")
    if colour is not None and not _HEX.match(colour):
        raise InputError(where, "colour", f"{name}: expected #rrggbb, got {colour!r}")
    al = raw.get("aliases") or ()
    if isinstance(al, str):
        al = al.split(";")
    if not isinstance(al, (list, tuple)):
        raise InputError(where, "aliases", f"{name}: expected a list of names, got {al!r}")
    aliases = tuple(a.strip() for a in map(str, al) if a.strip())
    return MineralEntry(name, formula, density, colour.lower() if colour else None, aliases)


def read_mineral_list(path: str | os.PathLike) -> list[MineralEntry]:
    """Read a mineral list (CSV or JSON, see the module docstring); InputError names file, row and field."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        data = read_json_input(path, "mineral list")
        if isinstance(data, dict):
            data = data.get("minerals")
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise InputError(path, "minerals", "expected a list of objects with 'name', 'formula', 'density'")
        entries = [_entry(r, f"{path} row {i + 1}") for i, r in enumerate(data)]
        where = [f"row {i + 1}" for i in range(len(data))]
    else:
        table = read_table(path, "mineral list")
        if "name" not in table.header:
            raise InputError(
                path,
                "header",
                f"expected a CSV with columns name, formula, density, colour, aliases (found {table.header})",
            )
        entries = [_entry(r, f"{path} line {n}", table.delimiter) for n, r in zip(table.lines, table.rows)]
        where = [f"line {n}" for n in table.lines]
    seen: dict[str, int] = {}
    for i, e in enumerate(entries):
        for key in dict.fromkeys(k.strip().lower() for k in (e.name, *e.aliases)):
            j = seen.setdefault(key, i)
            if j == i:
                continue
            if key == e.name.strip().lower() == entries[j].name.strip().lower():
                raise InputError(
                    path,
                    "name",
                    f"mineral {e.name!r} appears twice ({where[j]} and {where[i]}): names must be unique",
                )
            raise InputError(path, "name", f"{key!r} names both {entries[j].name!r} and {e.name!r}")
    if not entries:
        raise InputError(path, "mineral list", "no minerals in the file")
    return entries


def default_mineral_list() -> list[MineralEntry]:
    """The shipped list: the simulator's 50 minerals (``mingraph/data/minerals.csv``)."""
    return read_mineral_list(DEFAULT_LIST)


def library_entries(library: Sequence) -> list[MineralEntry]:
    """Mineral-list entries of a physics library (:class:`~mingraph.spectra.mineral_library.LibraryMineral`):
    name, density, colour, aliases, and the formula; a series gets the formula of the middle of
    its composition range (end members' atoms weighted by the grid's mean mole fractions), so
    deportment and the assay check see its elements.

    Examples
    --------
    >>> from mingraph.spectra.mineral_library import read_library
    >>> bio = next(e for e in library_entries(read_library()) if e.name == "biotite")
    >>> sorted(formula_composition(bio.formula))[:4]
    ['Al', 'Fe', 'H', 'K']
    """
    out = []
    for m in library:
        formula = m.formula
        if formula is None:
            from mingraph.spectra.library_view import middle_composition

            x, _ = middle_composition(m)
            formula = mix_formula([f for _, f in m.end_members], np.asarray(x, np.float64))
        out.append(MineralEntry(m.name, formula, m.density, m.colour, tuple(m.aliases)))
    return out


def class_minerals(
    class_names: Sequence[str], entries: Sequence[MineralEntry] | None = None, source: str = "default"
) -> ClassMinerals:
    """Match classes to a mineral list (default: the shipped one) by name or alias, case-insensitively.

    The matched entry's ``name`` becomes the class's display name (a class matched by an alias is
    shown under the list's name); unmatched classes keep theirs and are listed in ``missing``.
    """
    from mingraph.analyse.plots import phase_colours

    entries = default_mineral_list() if entries is None else list(entries)
    index = {k.strip().lower(): e for e in entries for k in (e.name, *e.aliases)}
    names = [str(c) for c in class_names]
    n = len(names)
    fallback = phase_colours(max(n, 1))
    dens = np.full(n, np.nan)
    formulas: list[str | None] = [None] * n
    cols = np.array(fallback[:n], dtype=np.float64).reshape(n, 3)
    comps: list[dict[str, float]] = [{} for _ in range(n)]
    missing, no_d, no_f = [], [], []
    for k, name in enumerate(names):
        e = index.get(name.strip().lower())
        if e is None:
            missing.append(name)
            continue
        names[k] = e.name  # the list's name is the one shown
        if e.density is None:
            no_d.append(name)
        else:
            dens[k] = e.density
        if e.formula is None:
            no_f.append(name)
        else:
            formulas[k] = e.formula
            comps[k] = formula_composition(e.formula, name)
        if e.colour:
            cols[k] = [int(e.colour[i : i + 2], 16) / 255.0 for i in (1, 3, 5)]
    import xraylib

    elements = sorted({s for c in comps for s in c}, key=xraylib.SymbolToAtomicNumber)
    comp = np.zeros((n, len(elements)))
    for k, c in enumerate(comps):
        for j, s in enumerate(elements):
            comp[k, j] = c.get(s, 0.0)
    return ClassMinerals(names, dens, formulas, cols, elements, comp, missing, no_d, no_f, source)


def group_entries(
    library: Sequence, groups: Sequence, weights: np.ndarray | None = None
) -> list[MineralEntry]:
    """Mineral-list entries of a library's group classes (:mod:`mingraph.spectra.mineral_groups`).

    A group's formula is its members' mix (:func:`~mingraph.spectra.mineral_groups.mix_formula`,
    atoms per formula unit) and its density their mean, both weighted by ``weights`` (G, C):
    what the pixels named by each group hold (:func:`~mingraph.spectra.mineral_groups.name_by_group`);
    None or a group of zero weight: its members in equal shares.  The colour is that of its
    most weighted member, lightened (45 % of the way to white) to tell them apart on a map.

    Examples
    --------
    >>> from mingraph.spectra.mineral_library import read_library
    >>> from mingraph.spectra.mineral_groups import mineral_groups
    >>> lib = read_library()
    >>> mica = next(g for g in mineral_groups(lib) if g.name == "mica group")
    >>> w = np.zeros((1, len(lib))); w[0, [m.name for m in lib].index("phlogopite")] = 1.0
    >>> e = group_entries(lib, [mica], w)[0]
    >>> e.name, e.formula, e.density == next(m.density for m in lib if m.name == "phlogopite")
    ('mica group', 'H2O12Mg2.55Al1Si3K1Fe0.45', True)
    """
    members = library_entries(library)
    out = []
    for gi, g in enumerate(groups):
        ids = np.asarray(g.members)
        w = np.ones(ids.size) if weights is None else np.asarray(weights[gi], np.float64)[ids]
        w = np.ones(ids.size) if w.sum() <= 0 else w
        formulas = [members[i].formula for i in ids]
        dens = np.array([np.nan if members[i].density is None else members[i].density for i in ids])
        known = np.isfinite(dens) & (w > 0)
        density = float(np.average(dens[known], weights=w[known])) if known.any() else None
        formula = mix_formula(formulas, w) if all(formulas) else None
        out.append(MineralEntry(g.name, formula, density, _tint(members[ids[int(np.argmax(w))]].colour)))
    return out


def _tint(colour: str | None, share: float = 0.45) -> str | None:
    """``colour`` (``#rrggbb``) moved ``share`` of the way to white: a group shown beside its member."""
    if not colour:
        return None
    rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + share * (255 - c)):02x}" for c in rgb)


def classifier_entries(
    library: Sequence, groups: Sequence = (), weights: np.ndarray | None = None
) -> list[MineralEntry]:
    """The entries of every class a physics classifier names: its library's minerals
    (:func:`library_entries`), then its groups (:func:`group_entries`, ``weights`` as there).

    Examples
    --------
    >>> from mingraph.spectra.mineral_library import read_library
    >>> from mingraph.spectra.mineral_groups import mineral_groups
    >>> lib = read_library()
    >>> len(classifier_entries(lib, mineral_groups(lib))) > len(lib)
    True
    """
    return library_entries(library) + group_entries(library, groups, weights)
