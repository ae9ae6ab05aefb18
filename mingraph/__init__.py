"""mingraph: mineral phase segmentation from SEM BSE images and sparse EDS spectra.

The public API (plain functions on arrays; see :mod:`mingraph.api`)::

    import mingraph
    pm = mingraph.phase_map(bse, points_rc, spectra)   # a PhaseMap: labels, confidence, legend
    mineralogy = mingraph.mineralogy(pm)               # modal, grains, liberation, assay ...

The names below are loaded on first use, so ``import mingraph`` stays light (the command line
imports only what each command needs).
"""

from mingraph.version import __version__ as __version__

__all__ = [
    "PhaseMap",
    "SpectrumClasses",
    "classify_spectra",
    "load_model",
    "mineralogy",
    "phase_map",
    "spectra_on_grid",
]


def __getattr__(name: str):
    if name in __all__:
        from mingraph import api

        return getattr(api, name)
    raise AttributeError(f"module 'mingraph' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
