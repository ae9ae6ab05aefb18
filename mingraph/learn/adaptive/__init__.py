"""Adaptive EDS acquisition: choose where to measure next, round by round (issue 15).

:func:`run_session` runs a session against any EDS source; :data:`STRATEGIES` names the
strategies (random, grid, segments, bright from :mod:`mingraph.acquire.strategies`; uncertainty
and SLADS-style from :mod:`.uncertainty` and :mod:`.slads`).
"""

from mingraph.learn.adaptive.session import MODEL_STRATEGIES, STRATEGIES, Session, run_session

__all__ = ["MODEL_STRATEGIES", "STRATEGIES", "Session", "run_session"]
