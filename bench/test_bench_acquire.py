"""Choosing a round's points on a 4096×4096 field takes less than the instrument measuring them.

A session at 1 % of the pixels (167,772 points) seeds 40 % on the grid, then chooses 3 rounds of
about 33,600 points; at 1.25 ms a spectrum the instrument spends ~42 s measuring one round.  The
bench times round 1's choice by the ``uncertainty`` and ``slads`` strategies (scores, BSE
novelty, distance transform, non-maximum suppression) on a 4096² BSE (a simulated 1024² field
repeated 4 × 4: the simulator's own 4096² field costs minutes to make).  The prediction
maps they read come from nearest-EDS labelling of Dirichlet-random class probabilities at the
seed points (cheap to make; the choice costs the same whatever the values).  The model's own
inference per round is counted separately by the session (docs/performance.md: ~200–420 s for a
4096² field on 2 shared cores).  Times are CPU seconds of this process (``time.process_time``):
the development machine's 2 cores are shared with other jobs, and wall clock measures their load.
"""

from __future__ import annotations

import time

import numpy as np
from figures import record, require
from timing import best_of

from mingraph.acquisition.costs import TimeModel
from mingraph.acquisition.predictions import nearest_maps
from mingraph.acquisition.session import batch_sizes
from mingraph.acquisition.state import AcquisitionState
from mingraph.acquisition.strategies import lattice
from mingraph.acquisition.uncertainty import choose_slads, choose_uncertainty

SIDE = 4096
BUDGET = 0.01


def _state() -> tuple[AcquisitionState, int]:
    from mingraph.acquire.sampling import n_points
    from mingraph.acquire.simulate import simulate_tile

    part = simulate_tile(5, SIDE // 4)
    bse, valid = np.tile(part.bse, (4, 4)), np.tile(part.valid, (4, 4))
    n_total = n_points(int(valid.sum()), BUDGET)
    sizes = batch_sizes(n_total, 3, 0.4)
    st = AcquisitionState(bse, valid, np.zeros(valid.shape, bool), np.zeros((0, 2), np.int32), n_total)
    seed = lattice(st, sizes[0])[: sizes[0]]
    st.points = seed
    st.measured[seed[:, 0], seed[:, 1]] = True
    probs = np.random.default_rng(0).dirichlet(np.full(50, 0.3), len(seed)).astype(np.float32)
    st.maps = nearest_maps(valid, seed, probs)
    st.n_classes = 50
    return st, sizes[1]


def test_choosing_a_round_is_faster_than_measuring_it(benchmark):
    st, n = _state()
    measure_s = n * TimeModel().dwell_ms / 1000.0
    times = {}
    for name, fn in (("uncertainty", choose_uncertainty), ("slads", choose_slads)):
        times[name] = best_of(
            lambda fn=fn: fn(
                AcquisitionState(st.bse, st.valid, st.measured, st.points, st.n_total, 50, st.maps),
                n,
                np.random.default_rng(0),
            ),
            repeat=1,
            clock=time.process_time,
            warm=False,
        )
    picked = choose_uncertainty(st, n, np.random.default_rng(0))
    ratios = {k: v / measure_s for k, v in times.items()}
    benchmark.extra_info.update({"points": n, "measure_s": measure_s, "choose_s": times, "ratio": ratios})
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(
        f"\n4096² at 1 %: round of {n} points, measuring {measure_s:.1f} s at 1.25 ms; choosing (CPU s) "
        + ", ".join(f"{k} {v:.1f} s ({ratios[k]:.2f}x)" for k, v in times.items())
    )
    assert len(picked) == n and not st.measured[picked[:, 0], picked[:, 1]].any()
    # ceiling: choosing (CPU s) must take at most half the instrument's time measuring the round
    require(
        *(
            record(
                f"acquire.choose_round_4096.{k}",
                v,
                "s",
                peer="instrument measuring the round",
                peer_value=measure_s,
                ratio="value/peer",
                ceiling=0.5,
                check=False,
                points=n,
            )
            for k, v in times.items()
        )
    )
