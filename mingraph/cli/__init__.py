"""The command line: one click group (``mingraph``), its commands one module a group of them.

``main`` (:mod:`mingraph.cli.group`: the group, simulate, predict, study, demo, build-graphs);
:mod:`~mingraph.cli.data` (import, dataset), :mod:`~mingraph.cli.models` (fit-encoder, train,
evaluate, export-model, convert-model, train-unet), :mod:`~mingraph.cli.sample`
(predict-sample, simulate-sample), :mod:`~mingraph.cli.acquire` (acquire, acquire-study),
:mod:`~mingraph.cli.classify` (classify-spectra), :mod:`~mingraph.cli.minerals` (minerals);
:mod:`~mingraph.cli.common` holds the error contract and shared options and
:mod:`~mingraph.cli.mineralogy_options` the mineralogy options.  Commands parse options and
call the library; they compute nothing themselves.
"""

import os

# torch's and Numba's thread pools take turns on the cores, and OpenMP threads that spin while
# they wait slow the other pool: sleeping waiters predict a 1024² field in 4.4 s against 4.9 s on
# an idle 2-core machine, and 6.0 s against 14.9 s on a loaded one (docs/performance.md).  Set
# before torch loads; a value the user gives is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from mingraph.cli.group import main  # noqa: E402

__all__ = ["main"]
