"""Import DGL 2.1 on a newer torch: the one place the project touches ``import dgl``.

DGL 2.1.0 (the newest DGL on the package index usable here) imports its ``graphbolt``
sub-package at start-up.  graphbolt is a sampling library we do not use; its C++ library is
only built for torch <= 2.2, and its Python side needs ``torchdata.datapipes``, which newer
torchdata no longer has, so ``import dgl`` fails on torch 2.13.  DGL's core (graphs,
``to_homogeneous``, ``ops.edge_softmax``, message passing) and ``dgl.nn`` do not need it.
We therefore register an empty placeholder module as ``dgl.graphbolt`` before importing DGL,
but only when the real one cannot be imported.  Use ``from mingraph_kernels.dgl_compat import dgl``.
"""

from __future__ import annotations

import importlib
import sys
import types


def _import_dgl():
    if "dgl" in sys.modules and "dgl.graphbolt" in sys.modules:
        return sys.modules["dgl"]
    try:
        return importlib.import_module("dgl")
    except (ImportError, OSError, FileNotFoundError):
        # A failed import leaves half-initialised dgl modules behind: drop them and retry.
        for name in [n for n in sys.modules if n == "dgl" or n.startswith("dgl.")]:
            del sys.modules[name]
    placeholder = types.ModuleType("dgl.graphbolt")
    placeholder.__doc__ = "Placeholder: DGL's graphbolt sampler is unavailable for this torch (see mingraph_kernels.dgl_compat)."
    placeholder.__path__ = []  # a package, so `import dgl.graphbolt.x` fails cleanly
    sys.modules["dgl.graphbolt"] = placeholder
    return importlib.import_module("dgl")


dgl = _import_dgl()

__all__ = ["dgl"]
