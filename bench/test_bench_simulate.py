"""Simulator speed: a 150×150 tile, and on-demand spectra against numpy's bare Poisson draw.

The paper-sized dataset (1596 tiles) must simulate in minutes; spectra are regenerated on
demand, so their cost is paid at every graph build and must stay close to the cost of drawing
the Poisson counts themselves.
"""

from __future__ import annotations

import numpy as np
from figures import record
from timing import best_of

from mingraph.acquire.fields import N_CHANNELS
from mingraph.acquire.simulate import simulate_tile
from mingraph.acquire.simulate.eds import SimulatedEds


def test_simulate_tile_150(benchmark):
    simulate_tile(0, 150)
    benchmark(simulate_tile, 1, 150)
    per_tile = benchmark.stats.stats.median
    benchmark.extra_info["seconds_for_1596_tiles"] = 1596 * per_tile
    print(f"\nsimulate_tile(150): {1000 * per_tile:.1f} ms; 1596 tiles ≈ {1596 * per_tile:.0f} s")
    # floor against a trivial peer measured in the same run: one 150×150 gaussian field
    from scipy import ndimage

    peer = best_of(lambda: ndimage.gaussian_filter(np.random.default_rng(0).random((150, 150)), 3), 5)
    ratio = per_tile / peer
    benchmark.extra_info["ratio_to_one_gaussian_filter"] = ratio
    print(f"simulate_tile / one gaussian_filter of the tile: {ratio:.0f}x")
    # measured ~20-60x; a tile is a few dozen filtered fields at most
    record(
        "simulate.tile_150",
        per_tile,
        "s",
        peer="one gaussian_filter of the tile",
        peer_value=peer,
        ratio="value/peer",
        ceiling=400,
    )


def test_spectra_2250_points_vs_numpy_poisson(benchmark):
    t = simulate_tile(9, 150)
    src = SimulatedEds(t.labels, 9, t.eds_params)
    idx = np.random.default_rng(1).choice(150 * 150, 2250, replace=False)
    rows, cols = np.divmod(idx, 150)
    src.spectra(rows[:10], cols[:10])
    benchmark(src.spectra, rows, cols)
    ours = benchmark.stats.stats.median
    lam = src.expected(rows, cols)
    rng = np.random.default_rng(0)
    peer = best_of(lambda: rng.poisson(lam).astype(np.float32), 5)
    ratio = ours / peer
    benchmark.extra_info["ratio_to_numpy_poisson"] = ratio
    print(
        f"\n2250 spectra: {1000 * ours:.0f} ms; numpy Poisson of the same (2250, {N_CHANNELS}) means: {1000 * peer:.0f} ms; ratio {ratio:.2f}"
    )
    # measured ~1x: the per-pixel counter-based generator costs no more than numpy's
    record(
        "simulate.spectra_2250",
        ours,
        "s",
        peer="numpy Poisson of the same means",
        peer_value=peer,
        ratio="value/peer",
        ceiling=3.0,
    )
