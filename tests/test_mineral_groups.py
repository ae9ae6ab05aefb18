"""Mineral groups as phase-map classes (mingraph.spectra.mineral_groups): the majority rule against a
pixel-by-pixel reference, the shipped library's groups, the physics classifier's group columns,
and what a group pixel holds in the mineralogy."""

import numpy as np
import pytest
import xraylib

from mingraph.analyse.mineralogy.minerals import class_minerals, classifier_entries, formula_composition
from mingraph.spectra.calibrate import Instrument
from mingraph.spectra.mineral_groups import MAJORITY, MineralGroup, mineral_groups, mix_formula, name_by_group
from mingraph.spectra.mineral_library import read_library
from mingraph.spectra.point_classifier import PhysicsClassifier


def _reference(p, groups, n):
    """The rule written out for one pixel at a time."""
    lab = np.empty(p.shape[0], np.int64)
    conf = np.empty(p.shape[0])
    for i, row in enumerate(p):
        k = int(np.argmax(row))
        lab[i], conf[i] = k, row[k]
        if row[k] < MAJORITY:
            for gi, g in enumerate(groups):
                s = sum(row[j] for j in g.members)
                if s >= MAJORITY:
                    lab[i], conf[i] = n + gi, s
    return lab, conf


def test_the_majority_rule_matches_a_pixel_by_pixel_reference():
    rng = np.random.default_rng(3)
    n, groups = 6, [MineralGroup("a group", np.array([0, 1, 2])), MineralGroup("b group", np.array([4, 5]))]
    p = rng.dirichlet(np.full(n + 1, 0.7), size=4000)  # minerals, then unknown
    p = np.insert(p, [n] * len(groups), 0.0, axis=1).astype(np.float32)  # the group columns
    lab, conf, w = name_by_group(p.reshape(40, 100, -1), groups, n)
    ref_lab, ref_conf = _reference(p, groups, n)
    assert np.array_equal(lab.ravel(), ref_lab)
    np.testing.assert_allclose(conf.ravel(), ref_conf, rtol=1e-6)
    assert (lab >= n).sum() > 100 and (lab == n + len(groups)).sum() > 0  # groups and unknown both occur
    for gi, g in enumerate(groups):
        take = ref_lab == n + gi
        np.testing.assert_allclose(w[gi], p[take, :n].sum(0) * np.isin(np.arange(n), g.members), rtol=1e-5)
    # no group holds the majority where a mineral does, and a group never stands for a majority mineral
    assert np.all(ref_conf[ref_lab < n] >= 0) and not np.any(
        (lab.ravel() >= n) & (p[:, :n].max(1) >= MAJORITY)
    )


def test_no_groups_is_the_argmax_and_a_sum_of_one_half_makes_the_group():
    # columns: minerals a, b, c; the group of a and b; unknown
    p = np.array(
        [
            [0.5, 0.5, 0.0, 0.0, 0.0],  # a at one half is a majority: a
            [0.4, 0.15, 0.0, 0.0, 0.45],  # a + b = 0.55: the group
            [0.25, 0.25, 0.1, 0.0, 0.4],  # a + b = 0.5 beats unknown's 0.4: the group
            [0.3, 0.1, 0.3, 0.0, 0.3],  # a + b = 0.4: no majority anywhere, the argmax (a)
            [0.2, 0.2, 0.0, 0.0, 0.6],  # unknown has the majority
        ],
        np.float32,
    )
    lab, conf, _ = name_by_group(p, [], 3)
    assert lab.tolist() == [0, 4, 4, 0, 4]
    g = [MineralGroup("ab group", np.array([0, 1]))]
    lab, conf, w = name_by_group(p, g, 3)
    assert lab.tolist() == [0, 3, 3, 0, 4]
    np.testing.assert_allclose(conf, [0.5, 0.55, 0.5, 0.3, 0.6], rtol=1e-6)
    np.testing.assert_allclose(w, [[0.65, 0.4, 0.0]], rtol=1e-6)


def test_the_shipped_librarys_groups():
    lib = read_library()
    groups = mineral_groups(lib)
    names = {m.name.lower() for m in lib}
    by_name = {g.name: g for g in groups}
    assert len(by_name) == len(groups) and not names & {g.name.lower() for g in groups}
    for g in groups:
        assert len(g.members) >= 2 and len({lib[i].group for i in g.members}) == 1
    assert {lib[i].name for i in by_name["mica group"].members} >= {"annite", "biotite", "phlogopite"}
    assert {"garnet group", "amphibole group", "chlorite group"} <= set(by_name)
    assert "silica group" not in by_name  # quartz alone: no group class
    # "epidote" is a mineral and a group: the group class keeps a name of its own
    assert "epidote group" in by_name and "epidote" in names


def test_the_physics_gives_no_spectrum_a_group():
    clf = PhysicsClassifier(Instrument(beam_kev=20.0))
    n_min = len(clf.library)
    assert clf.names[n_min:] == [g.name for g in clf.groups] and len(clf.groups) > 10
    rng = np.random.default_rng(0)
    mu = np.zeros(3000)
    mu[100:400] = 5.0
    p = clf.class_probabilities(rng.poisson(mu, size=(5, 3000)))
    assert p.shape == (5, len(clf.names) + 1)
    assert np.all(p[:, n_min : len(clf.names)] == 0) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert clf.record()["classes"] == n_min and clf.record()["groups"] == clf.names[n_min:]


@pytest.mark.parametrize("weights", [None, "phlogopite", "mix"])
def test_a_group_holds_what_its_pixels_hold(weights):
    lib = read_library()
    groups = mineral_groups(lib)
    gi = next(i for i, g in enumerate(groups) if g.name == "mica group")
    w = np.zeros((len(groups), len(lib)))
    ids = {m.name: k for k, m in enumerate(lib)}
    if weights == "phlogopite":
        w[gi, ids["phlogopite"]] = 2.0
    elif weights == "mix":
        w[gi, ids["annite"]], w[gi, ids["muscovite"]] = 3.0, 1.0
    cm = class_minerals([m.name for m in lib] + [g.name for g in groups], classifier_entries(lib, groups, w))
    k = len(lib) + gi
    assert cm.names[k] == "mica group" and not cm.missing
    members = groups[gi].members
    share = np.ones(len(members)) if weights is None else w[gi, members]
    share = share / share.sum()
    dens = np.array([lib[i].density for i in members])
    assert cm.densities[k] == pytest.approx(float(share @ dens))
    # the group's mass fractions: its formula's, a mix of its members' atoms (by hand for the mix)
    if weights == "mix":
        own = classifier_entries(lib)  # annite is a range: its middle formula; muscovite one formula
        ann, mus = (xraylib.CompoundParser(own[ids[n]].formula) for n in ("annite", "muscovite"))
        atoms = {}
        for c, s in ((ann, 0.75), (mus, 0.25)):
            for z, n in zip(c["Elements"], c["nAtoms"]):
                atoms[z] = atoms.get(z, 0.0) + s * n
        mass = {xraylib.AtomicNumberToSymbol(z): n * xraylib.AtomicWeight(z) for z, n in atoms.items()}
        tot = sum(mass.values())
        got = formula_composition(cm.formulas[k])
        for el, m in mass.items():
            assert got[el] == pytest.approx(m / tot, rel=1e-3), el
    if weights == "phlogopite":
        assert cm.formulas[k] == classifier_entries(lib)[ids["phlogopite"]].formula


def test_mix_formula_of_one_formula_is_that_formula_and_small_shares_are_dropped():
    assert formula_composition(mix_formula(["Fe2O3"], np.array([5.0]))) == pytest.approx(
        formula_composition("Fe2O3")
    )
    f = mix_formula(["FeS2", "CuFeS2"], np.array([1.0, 1e-7]))
    assert "Cu" not in f and formula_composition(f) == pytest.approx(formula_composition("FeS2"), rel=1e-3)
