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

from mingraph.cli.group import main

__all__ = ["main"]
