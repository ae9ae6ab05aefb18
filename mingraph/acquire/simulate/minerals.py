"""The mineral library: 50 phases with idealised end-member formulas, densities and sources.

Class id = index in ``MINERALS``. The paper's own 50-class list is private, so this is our own list,
modelled on a granite/pegmatite ore such as Pitinga (quartz, feldspars, cryolite, micas, Sn-Nb-Ta-Zr-Th-REE
accessories) plus common sulphides, oxides, carbonates, sulphates and silicates. Formulas are parsed by
``xraylib.CompoundParser`` (OH written out as O and H). Densities are measured values rounded to two
decimals from the Handbook of Mineralogy (Anthony et al.) or mindat/webmineral where noted.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import xraylib

from mingraph.common.errors import InputError

LIBRARY_VERSION = 1
"""Bumped whenever a formula, a density or the order changes (stored with every simulated dataset)."""

HOM = "Anthony et al., Handbook of Mineralogy (MSA)"
MINDAT = "mindat.org"
WEBMIN = "webmineral.com"


@dataclass(frozen=True)
class Mineral:
    """One phase: display name, idealised formula (xraylib syntax), density in g/cm³, and where from."""

    name: str
    formula: str
    density: float
    source: str


MINERALS: list[Mineral] = [
    # framework silicates and cryolite: near-equal mean Z, the hard cases for BSE alone
    Mineral("quartz", "SiO2", 2.65, HOM),
    Mineral("albite", "NaAlSi3O8", 2.62, HOM),
    Mineral("microcline", "KAlSi3O8", 2.56, HOM),
    Mineral("cryolite", "Na3AlF6", 2.97, HOM),
    Mineral("topaz", "Al2SiO4F2", 3.53, HOM),
    Mineral("beryl", "Be3Al2Si6O18", 2.76, HOM),
    Mineral("spodumene", "LiAlSi2O6", 3.15, HOM),
    Mineral("cordierite", "Mg2Al4Si5O18", 2.60, HOM),
    Mineral("kaolinite", "Al2Si2O9H4", 2.61, HOM),  # Al2Si2O5(OH)4
    # micas and other sheet / chain silicates
    Mineral("muscovite", "KAl3Si3O12H2", 2.82, HOM),  # KAl2(AlSi3O10)(OH)2
    Mineral("annite", "KFe3AlSi3O12H2", 3.30, HOM),  # biotite, Fe end member
    Mineral("phlogopite", "KMg3AlSi3O12H2", 2.80, HOM),
    Mineral("zinnwaldite", "KLiFeAl2Si3O10F2", 2.95, HOM),
    Mineral("polylithionite", "KLi2AlSi4O10F2", 2.82, HOM),
    Mineral("clinochlore", "Mg5Al2Si3O18H8", 2.65, HOM),  # chlorite: Mg5Al(AlSi3O10)(OH)8
    Mineral("magnesio-hornblende", "Ca2Mg4Al2Si7O24H2", 3.24, MINDAT),  # Ca2(Mg4Al)(Si7Al)O22(OH)2
    Mineral("schorl", "NaFe3Al6B3Si6O31H4", 3.22, HOM),  # tourmaline
    Mineral("epidote", "Ca2Al2FeSi3O13H", 3.45, HOM),  # Ca2Al2Fe(SiO4)(Si2O7)O(OH)
    Mineral("almandine", "Fe3Al2Si3O12", 4.32, HOM),  # garnet
    Mineral("titanite", "CaTiSiO5", 3.48, HOM),
    # Zr-Th-REE-Nb-Ta-Sn accessories of the Pitinga albite granite
    Mineral("zircon", "ZrSiO4", 4.65, HOM),
    Mineral("thorite", "ThSiO4", 6.70, HOM),
    Mineral("xenotime", "YPO4", 4.75, HOM),
    Mineral("monazite", "CePO4", 5.15, HOM),
    Mineral("pyrochlore", "NaCaNb2O6F", 4.45, HOM),  # fluorcalciopyrochlore-like idealisation
    Mineral("columbite", "FeNb2O6", 5.30, MINDAT),  # columbite-(Fe)
    Mineral("tantalite", "MnTa2O6", 7.95, MINDAT),  # tantalite-(Mn)
    Mineral("cassiterite", "SnO2", 6.99, HOM),
    Mineral("gahnite", "ZnAl2O4", 4.60, HOM),
    # halides, phosphate, carbonates, sulphates
    Mineral("fluorite", "CaF2", 3.18, HOM),
    Mineral("halite", "NaCl", 2.17, HOM),
    Mineral("fluorapatite", "Ca5P3O12F", 3.20, HOM),  # Ca5(PO4)3F
    Mineral("calcite", "CaCO3", 2.71, HOM),
    Mineral("dolomite", "CaMgC2O6", 2.85, HOM),
    Mineral("siderite", "FeCO3", 3.96, HOM),
    Mineral("rhodochrosite", "MnCO3", 3.69, HOM),
    Mineral("gypsum", "CaSO6H4", 2.31, HOM),  # CaSO4·2H2O
    Mineral("anhydrite", "CaSO4", 2.97, HOM),
    Mineral("barite", "BaSO4", 4.48, HOM),
    # Fe-Ti oxides
    Mineral("magnetite", "Fe3O4", 5.18, HOM),
    Mineral("hematite", "Fe2O3", 5.26, HOM),
    Mineral("ilmenite", "FeTiO3", 4.72, HOM),
    Mineral("rutile", "TiO2", 4.23, HOM),
    # sulphides
    Mineral("pyrite", "FeS2", 5.01, HOM),
    Mineral("pyrrhotite", "Fe7S8", 4.61, HOM),
    Mineral("chalcopyrite", "CuFeS2", 4.19, HOM),
    Mineral("sphalerite", "ZnS", 4.05, HOM),
    Mineral("galena", "PbS", 7.58, HOM),
    Mineral("arsenopyrite", "FeAsS", 6.07, HOM),
    Mineral("molybdenite", "MoS2", 4.73, HOM),
]

EPOXY = Mineral("epoxy", "C21H25O5", 1.15, "bisphenol-A epoxy resin cured with amine, approximate")
"""Mounting resin between particles and in cracks (label -1): carbon-rich, low backscatter."""

_INDEX = {m.name: i for i, m in enumerate(MINERALS)}


def class_names() -> list[str]:
    """Mineral names in class-id order."""
    return [m.name for m in MINERALS]


def mineral_index(name: str) -> int:
    """Class id of a mineral name; InputError for a name not in the library."""
    try:
        return _INDEX[name]
    except KeyError:
        raise InputError(
            "mineral library", "name", f"unknown mineral {name!r}; known: {', '.join(_INDEX)}"
        ) from None


def resolve(name_or_index: str | int) -> Mineral:
    """The Mineral for a name, a class id, or 'epoxy'."""
    if isinstance(name_or_index, (int, np.integer)):
        if not 0 <= int(name_or_index) < len(MINERALS):
            raise InputError(
                "mineral library", "index", f"class id {name_or_index} outside [0, {len(MINERALS) - 1}]"
            )
        return MINERALS[int(name_or_index)]
    if name_or_index == EPOXY.name:
        return EPOXY
    return MINERALS[mineral_index(name_or_index)]


@cache
def composition(formula: str) -> tuple[tuple[int, float], ...]:
    """(Z, mass fraction) pairs of a formula, parsed by xraylib."""
    c = xraylib.CompoundParser(formula)
    return tuple(zip((int(z) for z in c["Elements"]), (float(w) for w in c["massFractions"])))


def mean_z(formula: str) -> float:
    """Mass-fraction-weighted mean atomic number Z̄ = Σ w_i Z_i (the quantity BSE contrast follows)."""
    return float(sum(w * z for z, w in composition(formula)))


def reuter_eta(z: float | np.ndarray) -> float | np.ndarray:
    """Backscatter coefficient η(Z) of Reuter (1972), a cubic fit valid for normal incidence, Z ≤ ~80."""
    z = np.asarray(z, dtype=np.float64)
    out = -0.0254 + 0.016 * z - 1.86e-4 * z**2 + 8.3e-7 * z**3
    return float(out) if out.ndim == 0 else out


def eta_table() -> np.ndarray:
    """η of every library mineral in class-id order, then epoxy as the last entry."""
    return np.array([reuter_eta(mean_z(m.formula)) for m in [*MINERALS, EPOXY]])
