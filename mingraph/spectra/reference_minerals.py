"""Reference minerals: the shipped library's minerals that a user's list does not hold.

The physics classifier (:func:`mingraph.spectra.physics.classify_spectra`) compares each
spectrum with them as well as with the list: a spectrum one of them explains at least as well as
the list's best class is "unknown: fits a mineral not in the list", not the list's nearest
mineral.  A list holds a mineral when it names it or has its composition under another name.
"""

from __future__ import annotations

from mingraph.spectra.physics_model import PhysicsModel


def reference_model(model: PhysicsModel, library: list | None = None) -> PhysicsModel | None:
    """The minerals of ``library`` (default: the shipped one) that ``model``'s list does not hold,
    at ``model``'s instrument; None when none is left.

    A mineral is held when the list names it (name or alias, case-insensitively) or has its
    formula under another name (same elements, mass fractions within 0.5 wt %): a user's list
    with its own names must not lose its minerals to their shipped twins."""
    from mingraph.spectra.mineral_library import read_library
    from mingraph.spectra.physics_model import build_model

    lib = read_library() if library is None else library
    named = {k.strip().lower() for m in model.library for k in (m.name, *m.aliases)}
    held = [_composition_key(m) for m in model.library]
    rest = [
        m
        for m in lib
        if not ({k.strip().lower() for k in (m.name, *m.aliases)} & named)
        and not any(_same_composition(_composition_key(m), h) for h in held)
    ]
    if not rest:
        return None
    return build_model(rest, model.instrument, float(model.edges[0] * 10.0), model.continuum_scale)


def _composition_key(m) -> tuple[dict[int, float], ...]:
    """Mass fractions by atomic number of each end member of a library mineral."""
    from mingraph.spectra.mineral_library import formula_mass_fractions

    return tuple(formula_mass_fractions(f)[0] for _, f in m.end_members)


def _same_composition(a: tuple, b: tuple, tol: float = 0.005) -> bool:
    """True when two minerals' end members have the same elements and mass fractions within ``tol``."""
    if len(a) != len(b):
        return False
    return all(x.keys() == y.keys() and all(abs(x[z] - y[z]) <= tol for z in x) for x, y in zip(a, b))
