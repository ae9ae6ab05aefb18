"""Graph construction benchmarks: the structured (compact) graph against the reference builders.

Run with ``pytest bench/``.  Every test times the fast builder with pytest-benchmark (Numba
compiled beforehand, outside the timed region) and a baseline once in the same run, prints the
ratio and stores it in ``benchmark.extra_info``; each ratio has an asserted floor set about half
of what we measure on the 2-core CI machines, so a real slowdown fails while noise does not.

* 150x150 tiles, on one core: against the plain-Python reference builder
  (``mingraph_kernels.reference``), which builds the explicit edge list from the paper's text.
* 4096x4096 field, all cores: the reference would take hours (it is O(pixels x EDS)), so the
  baseline is scipy on the full field: cKDTree nearest query for every pixel (all workers; its
  ties are arbitrary) + scipy Delaunay + numpy edge extraction.
* time linear in pixels: one core, 1% EDS, 512^2 .. 2048^2, against a linear reference pass
  (scipy EDT) over the same pixels, so that cache size and load do not move the ratio.
"""

from __future__ import annotations

import time

import numba
import numpy as np
import pytest
from figures import record
from timing import best_of

from mingraph.graphs.structure import build_structured_graph, edge_list
from mingraph_kernels.reference import reference_edges

TILE = 150
# Floors about a third of the ratios measured on the shared 2-core machines (docs/performance.md,
# "Graph construction"): other jobs share the cores, and wall-clock ratios vary about 2x with load.
TILE_FLOOR = {0.001: 600, 0.01: 500, 0.05: 200, 0.1: 250}
EXPLICIT_FLOOR = 150  # reference (explicit edge list) vs our build + explicit edge list, 1% tile
FIELD_FLOOR = 2.0  # scipy (cKDTree + Delaunay) vs ours, 4096^2 at 1%
LINEAR_CEILING = 1.6  # per-pixel CPU time growth 2048^2 over 512^2, relative to a linear reference pass


def random_field(h: int, w: int, fraction: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = max(1, int(round(fraction * h * w)))
    idx = rng.choice(h * w, n, replace=False)
    rc = np.stack([idx // w, idx % w], 1).astype(np.int32)
    return rng.random((h, w), dtype=np.float32), rc, rng.random((n, 64), dtype=np.float32)


def median_s(benchmark) -> float | None:
    """The benchmark's median in seconds, or None when benchmarks are disabled."""
    stats = getattr(benchmark, "stats", None)
    return None if stats is None else stats.stats.median


@pytest.fixture
def one_core():
    """Run Numba kernels on one thread (the per-tile target is for one core)."""
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


@pytest.mark.parametrize("fraction", [0.001, 0.01, 0.05, 0.1])
def test_tile_build_vs_reference(benchmark, one_core, fraction):
    bse, rc, feat = random_field(TILE, TILE, fraction)
    build_structured_graph(bse, rc, feat)  # compile / warm up outside the timed region
    benchmark(build_structured_graph, bse, rc, feat)
    ours = median_s(benchmark)
    ref = best_of(lambda: reference_edges(TILE, TILE, rc), 1, warm=False)
    if ours is None:
        return
    ratio = ref / ours
    benchmark.extra_info.update(
        n_eds=len(rc), ours_ms=ours * 1e3, reference_ms=ref * 1e3, speedup_vs_reference=ratio
    )
    print(
        f"\n150x150 at {fraction:.1%} ({len(rc)} EDS): ours {ours * 1e3:.3f} ms, reference {ref * 1e3:.0f} ms, {ratio:.0f}x"
    )
    record(
        f"graphs.tile_150.build.eds_{fraction:g}",
        ours,
        "s",
        peer="reference builder (plain Python)",
        peer_value=ref,
        floor=TILE_FLOOR[fraction],
        n_eds=len(rc),
    )


def test_tile_explicit_edge_list_vs_reference(benchmark, one_core):
    bse, rc, feat = random_field(TILE, TILE, 0.01)
    edge_list(build_structured_graph(bse, rc, feat))

    def explicit():
        return edge_list(build_structured_graph(bse, rc, feat))

    benchmark(explicit)
    ours = median_s(benchmark)
    if ours is None:
        return
    ref = best_of(lambda: reference_edges(TILE, TILE, rc), 1, warm=False)
    ratio = ref / ours
    benchmark.extra_info.update(ours_ms=ours * 1e3, reference_ms=ref * 1e3, speedup_vs_reference=ratio)
    print(
        f"\n150x150 at 1%, build + explicit edge list: ours {ours * 1e3:.2f} ms, reference {ref * 1e3:.0f} ms, {ratio:.0f}x"
    )
    record(
        "graphs.tile_150.build_and_edge_list.eds_0.01",
        ours,
        "s",
        peer="reference builder (plain Python)",
        peer_value=ref,
        floor=EXPLICIT_FLOOR,
    )


def scipy_baseline(h: int, w: int, rc: np.ndarray):
    """Nearest EDS of every pixel with cKDTree (all workers) + scipy Delaunay edges: the library way."""
    from scipy.spatial import Delaunay, cKDTree

    rr, cc = np.mgrid[0:h, 0:w]
    _, near = cKDTree(rc).query(np.stack([rr.ravel(), cc.ravel()], 1), workers=-1)
    s = Delaunay(rc.astype(np.float64)).simplices
    e = np.sort(np.concatenate([s[:, [0, 1]], s[:, [1, 2]], s[:, [0, 2]]]), 1)
    return near.reshape(h, w), np.unique(e, axis=0)


def edt_baseline(h: int, w: int, rc: np.ndarray):
    """Nearest EDS by scipy's distance transform (arbitrary ties) + scipy Delaunay: informational only."""
    from scipy import ndimage
    from scipy.spatial import Delaunay

    mask = np.ones((h, w), bool)
    mask[rc[:, 0], rc[:, 1]] = False
    _, (ir, ic) = ndimage.distance_transform_edt(mask, return_indices=True)
    Delaunay(rc.astype(np.float64))
    return ir, ic


def test_field_4096_build_vs_scipy(benchmark):
    h = w = 4096
    bse, rc, feat = random_field(h, w, 0.01)
    small = (rc[:, 0] < 64) & (rc[:, 1] < 64)
    build_structured_graph(
        bse[:64, :64], rc[small], feat[small]
    )  # compile / warm up outside the timed region
    g = benchmark.pedantic(build_structured_graph, args=(bse, rc, feat), rounds=3, iterations=1)
    ours = median_s(benchmark)
    if ours is None:
        return
    t = time.perf_counter()
    near, _ = scipy_baseline(h, w, rc)
    ref = time.perf_counter() - t
    t = time.perf_counter()
    edt_baseline(h, w, rc)
    edt = time.perf_counter() - t
    # same minimal distances on every 8th row (the baselines' ties are arbitrary)
    rows = np.arange(0, h, 8)[:, None]
    cols = np.arange(w)[None, :]
    d_ours = (rows - rc[g.nearest_eds[::8], 0]) ** 2 + (cols - rc[g.nearest_eds[::8], 1]) ** 2
    d_ref = (rows - rc[near[::8], 0]) ** 2 + (cols - rc[near[::8], 1]) ** 2
    assert np.array_equal(d_ours, d_ref)
    ratio = ref / ours
    benchmark.extra_info.update(
        n_eds=len(rc),
        ours_s=ours,
        scipy_ckdtree_s=ref,
        speedup_vs_scipy=ratio,
        scipy_edt_s=edt,
        threads=numba.get_num_threads(),
    )
    print(
        f"\n4096x4096 at 1% ({len(rc)} EDS, {numba.get_num_threads()} threads): ours {ours:.2f} s, "
        f"scipy cKDTree + Delaunay {ref:.2f} s ({ratio:.1f}x), scipy EDT (arbitrary ties) + Delaunay {edt:.2f} s"
    )
    record(
        "graphs.field_4096.build.eds_0.01",
        ours,
        "s",
        peer="scipy cKDTree + Delaunay",
        peer_value=ref,
        floor=FIELD_FLOOR,
        threads=numba.get_num_threads(),
    )


def linear_reference(h: int, w: int, rc: np.ndarray):
    """A linear-time pass over the same pixels with the same kind of output: nearest EDS of every
    pixel by scipy's exact Euclidean distance transform (Maurer et al. 2003, O(pixels)), int32
    index maps as large as ours.  Its time per pixel grows with the field as the memory hierarchy
    makes any linear pass grow (L2/L3 misses), so the ratio of the two growths is the builder's
    own departure from linear time, whatever the cache sizes and the load of the machine."""
    from scipy import ndimage

    mask = np.ones((h, w), bool)
    mask[rc[:, 0], rc[:, 1]] = False
    return ndimage.distance_transform_edt(mask, return_distances=False, return_indices=True)


def test_time_linear_in_pixels(benchmark, one_core):
    # CPU time of this process on one thread, each size against a linear reference pass over the
    # same pixels timed in the same run: neither machine load nor cache size moves the ratio.
    sizes = [512, 1024, 2048]
    fields = {s: random_field(s, s, 0.01, seed=s) for s in sizes}
    build_structured_graph(*fields[512])
    per_pixel, ref_per_pixel = {}, {}
    for s in sizes:
        per_pixel[s] = best_of(
            lambda: build_structured_graph(*fields[s]), 3, time.process_time, warm=False
        ) / (s * s)
        ref_per_pixel[s] = best_of(
            lambda: linear_reference(s, s, fields[s][1]), 3, time.process_time, warm=False
        ) / (s * s)
    benchmark.pedantic(build_structured_graph, args=fields[1024], rounds=1, iterations=1)
    raw = per_pixel[2048] / per_pixel[512]
    ref = ref_per_pixel[2048] / ref_per_pixel[512]
    growth = raw / ref
    benchmark.extra_info.update(
        {f"ns_per_pixel_{s}": v * 1e9 for s, v in per_pixel.items()},
        raw_growth_512_to_2048=raw,
        reference_growth_512_to_2048=ref,
        growth_512_to_2048=growth,
    )
    print(
        "\nper-pixel build CPU time (1 thread, 1% EDS): "
        + ", ".join(f"{s}^2 {v * 1e9:.1f} ns" for s, v in per_pixel.items())
        + f"; growth {raw:.2f}, linear reference (scipy EDT) growth {ref:.2f}, ratio {growth:.2f}"
    )
    # at most LINEAR_CEILING: build time must grow (almost) linearly in pixels, relative to a linear pass
    record(
        "graphs.per_pixel_growth_512_to_2048",
        raw,
        "x",
        peer="linear reference pass (scipy EDT)",
        peer_value=ref,
        ratio="value/peer",
        ceiling=LINEAR_CEILING,
    )
