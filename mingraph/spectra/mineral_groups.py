"""Mineral groups as classes of a phase map: a pixel no mineral of its group holds the majority of, but
the group does, is named by its group.

A library's ``group`` column (:mod:`mingraph.spectra.mineral_library`) puts minerals that EDS
tells apart only by degrees in one family: micas, amphiboles, garnets, chlorites, Fe–Ti oxides.
Where the fusion model mixes neighbouring points of one family (biotite and annite, say, which
are two ranges of one series), no single mineral may reach the majority of a pixel's
probability although the family plainly does.  Vendors' classification schemes are hierarchies
for this reason (a TIMA or Mineralogic scheme reports "mica" where it cannot say which); so is
this one: every group of two or more minerals in the list is one more class, named
``"<group> group"``, that no EDS point is ever given, and a pixel takes it only by
:func:`name_by_group`'s majority rule.  What a group pixel contains, for densities and the
assay, is the mix of its members that the pixels' probabilities give (:func:`mix_formula`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAJORITY = 0.5
"""The probability share a mineral or a group must reach to name a pixel by :func:`name_by_group`."""


@dataclass(frozen=True)
class MineralGroup:
    """A group class: its display ``name`` and the class ids of its ``members`` (int64, sorted)."""

    name: str
    members: np.ndarray


def mineral_groups(library: Sequence) -> list[MineralGroup]:
    """The groups of a mineral library that hold at least two of its minerals, in order of first
    appearance; a member's id is its position in ``library``.

    Parameters
    ----------
    library : sequence of LibraryMineral
        Entries with a ``group`` attribute (``""``: none), e.g.
        :func:`mingraph.spectra.mineral_library.read_library`.

    Returns
    -------
    list of MineralGroup
        Named ``"<group> group"`` (a group named like one of the library's minerals or already
        ending in "group" keeps a distinct name all the same).

    Examples
    --------
    >>> from types import SimpleNamespace as M
    >>> lib = [M(name="annite", group="mica"), M(name="quartz", group="silica"),
    ...        M(name="biotite", group="mica")]
    >>> [(g.name, g.members.tolist()) for g in mineral_groups(lib)]
    [('mica group', [0, 2])]
    """
    order: dict[str, list[int]] = {}
    for k, m in enumerate(library):
        g = str(getattr(m, "group", "") or "").strip()
        if g:
            order.setdefault(g, []).append(k)
    names = {str(m.name).strip().lower() for m in library}
    out = []
    for g, ids in order.items():
        if len(ids) < 2:
            continue
        name = g if g.lower().endswith(" group") and g.lower() not in names else f"{g} group"
        while name.lower() in names:
            name += " (group)"
        out.append(MineralGroup(name, np.asarray(ids, np.int64)))
    return out


def name_by_group(
    probabilities: np.ndarray, groups: Sequence[MineralGroup], n_minerals: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each pixel's class and confidence, a group standing in where no mineral has the majority.

    Parameters
    ----------
    probabilities : (..., K) float array
        Class probabilities in the class order ``n_minerals`` minerals, then one column a group
        (in ``groups`` order; their values are ignored), then any further columns (unknown).
    groups : sequence of MineralGroup
        :func:`mineral_groups`; member ids below ``n_minerals``.
    n_minerals : int
        The number of mineral columns.

    Returns
    -------
    labels : (...) int64
        The most probable column; where that column's probability is below :data:`MAJORITY`
        and the summed probability of one group's members is at least :data:`MAJORITY`, that
        group's column ``n_minerals + g`` instead (at most one group can hold a majority).
    confidence : (...) float32
        The chosen column's probability, or the group's summed probability.
    weights : (len(groups), n_minerals) float64
        Per group, the summed member probabilities over the pixels named by it: what the group's
        pixels hold (:func:`mix_formula`).

    Examples
    --------
    >>> g = [MineralGroup("mica group", np.array([0, 1]))]
    >>> p = np.array([[0.3, 0.3, 0.4, 0.0, 0.0],    # annite, biotite, quartz, mica group, unknown
    ...               [0.6, 0.1, 0.3, 0.0, 0.0],
    ...               [0.2, 0.2, 0.1, 0.0, 0.5]])
    >>> lab, conf, w = name_by_group(p, g, 3)
    >>> lab.tolist(), [round(float(c), 2) for c in conf], w.round(2).tolist()
    ([3, 0, 4], [0.6, 0.6, 0.5], [[0.3, 0.3, 0.0]])
    """
    p = np.asarray(probabilities)
    labels = p.argmax(-1)
    conf = np.take_along_axis(p, labels[..., None], -1)[..., 0].astype(np.float32)
    weights = np.zeros((len(groups), n_minerals))
    if not groups:
        return labels, conf, weights
    low = conf < MAJORITY
    for gi, g in enumerate(groups):
        s = p[..., g.members].sum(-1)
        take = low & (s >= MAJORITY)
        if take.any():
            labels[take] = n_minerals + gi
            conf[take] = s[take]
            weights[gi, g.members] = p[take][:, g.members].sum(0)
    return labels, conf, weights


def mix_formula(formulas: Sequence[str], weights: np.ndarray) -> str:
    """The formula of a mix of minerals: atoms per formula unit averaged with ``weights``.

    Parameters
    ----------
    formulas : sequence of str
        xraylib formulas of the members (e.g. from
        :func:`mingraph.analyse.mineralogy.minerals.library_entries`).
    weights : (len(formulas),) float
        Non-negative shares (any scale; all zero: equal shares).

    Returns
    -------
    str
        A formula xraylib parses (elements by atomic number, atoms to 4 decimals).

    Examples
    --------
    >>> mix_formula(["KFe3AlSi3O10(OH)2", "KMg3AlSi3O10(OH)2"], np.array([1.0, 1.0]))
    'H2O12Mg1.5Al1Si3K1Fe1.5'
    """
    import xraylib

    w = np.asarray(weights, np.float64)
    w = np.ones(len(formulas)) if w.sum() <= 0 else w
    w = w / w.sum()
    atoms: dict[int, float] = {}
    for wi, f in zip(w, formulas):
        c = xraylib.CompoundParser(f)
        for z, n in zip(c["Elements"], c["nAtoms"]):
            atoms[int(z)] = atoms.get(int(z), 0.0) + float(wi) * float(n)
    kept = [(z, round(n, 4)) for z, n in sorted(atoms.items()) if round(n, 4) > 0]
    return "".join(f"{xraylib.AtomicNumberToSymbol(z)}{n:g}" for z, n in kept)
