"""Mineral lists, calculated assay, deportment and chemical assay files, against hand-worked chemistry."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mingraph.acquire.simulate.minerals import MINERALS
from mingraph.analyse.mineralogy.assay import assay_rows, calculated_assay, deportment, read_assay
from mingraph.analyse.mineralogy.minerals import (
    class_minerals,
    default_mineral_list,
    formula_composition,
    read_mineral_list,
)
from mingraph.common.errors import InputError

# standard atomic weights (IUPAC 2021, abridged): the hand-worked reference, independent of xraylib
W = {"Fe": 55.845, "S": 32.06, "Si": 28.085, "O": 15.999, "Ca": 40.078, "P": 30.974, "F": 18.998, "H": 1.008}


def test_default_list_is_the_simulator_library():
    entries = default_mineral_list()
    assert [(e.name, e.formula, e.density) for e in entries] == [
        (m.name, m.formula, m.density) for m in MINERALS
    ]
    cm = class_minerals([m.name for m in MINERALS])
    assert not cm.missing and not cm.no_density and not cm.no_formula
    assert np.allclose(cm.composition.sum(axis=1), 1.0)
    from mingraph.analyse.plots import phase_colours

    assert np.allclose(cm.colours, phase_colours(len(MINERALS)), atol=1 / 255)


def test_formula_with_brackets_by_hand():
    c = formula_composition("Ca5(PO4)3F")
    mol = 5 * W["Ca"] + 3 * (W["P"] + 4 * W["O"]) + W["F"]
    assert c["Ca"] == pytest.approx(5 * W["Ca"] / mol, rel=1e-3)
    assert c["P"] == pytest.approx(3 * W["P"] / mol, rel=1e-3)
    with pytest.raises(InputError) as ei:
        formula_composition("Xx2O", "mine.csv row 3")
    assert ei.value.field == "formula" and "mine.csv row 3" in str(ei.value)


def test_user_list_csv_and_json_change_names_densities_colours(tmp_path):
    csv_path = tmp_path / "m.csv"
    csv_path.write_text(
        "name,formula,density,colour,aliases\n"
        "Pyrite,FeS2,5.0,#ff0000,py;FeS2 phase\n"
        "quartz,SiO2,2.65,,\n"
        "gangue,,,#00ff00,\n"
    )
    entries = read_mineral_list(csv_path)
    cm = class_minerals(["py", "quartz", "gangue", "unknown"], entries, source=str(csv_path))
    assert cm.densities[:2].tolist() == [5.0, 2.65] and np.isnan(cm.densities[2:]).all()
    assert cm.formulas == ["FeS2", "SiO2", None, None]
    assert cm.missing == ["unknown"] and cm.no_density == ["gangue"] and cm.no_formula == ["gangue"]
    assert cm.colours[0].tolist() == [1.0, 0.0, 0.0] and cm.colours[2].tolist() == [0.0, 1.0, 0.0]
    j = tmp_path / "m.json"
    j.write_text(
        json.dumps({"minerals": [{"name": "pyrite", "formula": "FeS2", "density": 5.0, "aliases": ["py"]}]})
    )
    assert class_minerals(["PY "], read_mineral_list(j)).densities.tolist() == [5.0]


BAD_MINERAL_LISTS = [
    ("name,formula,density\npyrite,FeS2,-1\n", "density"),
    ("name,formula,density\npyrite,FeS2,heavy\n", "density"),
    ("name,formula,density\npyrite,Fe$2,5\n", "formula"),
    ("name,formula,density,colour\npyrite,FeS2,5,red\n", "colour"),
    ("name,formula,density\npyrite,FeS2,5\nPyrite,FeS2,5\n", "name"),
    ("mineral,formula\npyrite,FeS2\n", "header"),
    ("name,formula,density\n,FeS2,5\n", "name"),
]
BAD_ASSAYS = [
    ("element,wt_pct\nFe,abc\n", "wt_pct"),
    ("element,wt_pct\nFe,120\n", "wt_pct"),
    ("element,wt_pct\nQq,1\n", "element"),
    ("element,wt_pct\nFe,1\nFe,2\n", "element"),
    ("el,wt\nFe,1\n", "header"),
]


@pytest.mark.parametrize(
    "read, file_name, text, field",
    [(read_mineral_list, "bad.csv", t, f) for t, f in BAD_MINERAL_LISTS]
    + [(read_assay, "a.csv", t, f) for t, f in BAD_ASSAYS],
)
def test_bad_mineral_list_or_assay_names_file_row_and_field(tmp_path, read, file_name, text, field):
    p = tmp_path / file_name
    p.write_text(text)
    with pytest.raises(InputError) as ei:
        read(p)
    assert ei.value.field == field and file_name in str(ei.value)


def test_calculated_assay_and_deportment_by_hand():
    # 30 % pyrite, 70 % quartz by mass
    cm = class_minerals(["pyrite", "quartz"])
    mass = np.array([30.0, 70.0])
    a = dict(zip(cm.elements, calculated_assay(mass, cm.composition)))
    fes2 = W["Fe"] + 2 * W["S"]
    sio2 = W["Si"] + 2 * W["O"]
    assert a["Fe"] == pytest.approx(30 * W["Fe"] / fes2, rel=1e-3)
    assert a["S"] == pytest.approx(30 * 2 * W["S"] / fes2, rel=1e-3)
    assert a["Si"] == pytest.approx(70 * W["Si"] / sio2, rel=1e-3)
    assert sum(a.values()) == pytest.approx(100)
    d = deportment(mass, cm.composition)
    assert d[:, cm.elements.index("Fe")].tolist() == [100, 0] and d[:, cm.elements.index("O")].tolist() == [
        0,
        100,
    ]
    # O shared: pyrite carries none here; with magnetite it splits by mass x fraction
    cm2 = class_minerals(["magnetite", "quartz"])
    d2 = deportment(np.array([50.0, 50.0]), cm2.composition)
    o = cm2.elements.index("O")
    fo_mag = 4 * W["O"] / (3 * W["Fe"] + 4 * W["O"])
    fo_qz = 2 * W["O"] / sio2
    assert d2[0, o] == pytest.approx(100 * fo_mag / (fo_mag + fo_qz), rel=1e-3)


def test_read_assay_elements_and_oxides(tmp_path):
    p = tmp_path / "assay.csv"
    p.write_text("element,wt_pct\nFe,12.5\nSiO2,60\n")
    a = read_assay(p)
    assert a["Fe"] == 12.5 and a["Si"] == pytest.approx(60 * W["Si"] / (W["Si"] + 2 * W["O"]), rel=1e-3)
    rows = assay_rows(["Fe", "S"], np.array([10.0, 5.0]), None, {"Fe": 12.5, "Au": 0.1})
    assert rows[0]["difference_wt_pct"] == pytest.approx(-2.5) and rows[1]["measured_wt_pct"] is None
    assert rows[2]["element"] == "Au" and rows[2]["calculated_wt_pct"] == 0.0
