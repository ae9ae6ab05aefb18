"""Adaptive EDS acquisition: choose where to measure next, round by round.

One package, one concern a module: the typed state a strategy sees (:mod:`.state`), the
strategies that need no model (:mod:`.strategies`) and those that read the model's prediction
(:mod:`.uncertainty`, :mod:`.slads`, sharing :mod:`.bse_maps`), the per-round prediction
(:mod:`.predictions`), the instrument's time (:mod:`.costs`), a session (:mod:`.session`), its
files (:mod:`.outputs`, ``mingraph acquire``) and the study of strategies (:mod:`.study`,
``mingraph acquire-study``).  It reads a model only through the model interface
(:class:`mingraph.learn.registry.PhaseModel` in a :class:`mingraph.learn.bundle.Bundle`, and the
block tiler :func:`mingraph.learn.tiling.block_probabilities`).

:func:`run_session` runs a session against any EDS source; :data:`STRATEGIES` names the
strategies.
"""

from mingraph.acquisition.session import MODEL_STRATEGIES, STRATEGIES, Session, run_session
from mingraph.acquisition.state import AcquisitionState, PredictionMaps

__all__ = ["MODEL_STRATEGIES", "STRATEGIES", "AcquisitionState", "PredictionMaps", "Session", "run_session"]
