"""Energy calibrations onto the 10 eV grid: against a brute-force overlap reference, counts
conserved, integers kept, explicit axes, and true errors."""

from __future__ import annotations

import numpy as np
import pytest

from mingraph.acquire.calibration import GRID_EDGES_EV, axis_edges, summary_line, to_grid
from mingraph.common.errors import InputError


def brute_force(counts: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Overlap rebinning written out pair by pair (the definition, no cumulative sums)."""
    out = np.zeros(3000)
    for k in range(counts.size):
        a, b = edges[k], edges[k + 1]
        for j in range(max(0, int(a // 10) - 1), min(3000, int(b // 10) + 2)):
            lo, hi = max(a, 10.0 * j), min(b, 10.0 * (j + 1))
            if hi > lo:
                out[j] += counts[k] * (hi - lo) / (b - a)
    return out


@pytest.mark.parametrize(
    "offset,scale,n",
    [(-472.4, 10.001, 2048), (-1900.77, 20.006, 4096), (3.0, 7.3, 500), (0.0, 10.0, 3000), (-5.0, 2.5, 300)],
)
def test_float_counts_match_the_brute_force_overlap(offset, scale, n):
    rng = np.random.default_rng(n)
    edges = axis_edges({"offset": offset / 1000, "scale": scale / 1000, "units": "keV"}, n, "x")
    counts = rng.random(n) * 50 * (edges[:-1] < 35000)  # some counts beyond 30 keV, most inside
    got, rec = to_grid(counts[None], edges, "x")
    ref = brute_force(counts, edges)
    assert got.dtype == np.float32 and np.allclose(got[0], ref, rtol=1e-5, atol=1e-4)
    inside = ref.sum()
    assert np.isclose(rec["counts_below_0_ev"] + rec["counts_above_grid"] + inside, counts.sum())
    assert rec["rebinned"] == ((offset, scale) != (0.0, 10.0))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.int64])
def test_integer_counts_stay_integers_and_are_conserved(dtype):
    rng = np.random.default_rng(1)
    hi = {np.uint8: 255, np.uint16: 65535}.get(dtype, 3_000_000)
    counts = rng.integers(0, hi, size=(3, 4, 2048), endpoint=True).astype(dtype)
    edges = -472.4 + 10.001 * np.arange(2049)
    got, rec = to_grid(counts, edges, "x")
    assert got.dtype.kind == "u" and got.shape == (3, 4, 3000)
    assert int(got.max()) <= np.iinfo(got.dtype).max
    ref = np.stack([brute_force(c.astype(float), edges) for c in counts.reshape(-1, 2048)[:3]])
    assert np.abs(got.reshape(-1, 3000)[:3] - ref).max() <= 1.0  # within one count of the exact share
    below, above = rec["counts_below_0_ev"], rec["counts_above_grid"]
    assert int(got.sum(dtype=np.int64)) + below + above == int(counts.sum(dtype=np.int64))  # exact


def test_the_grid_itself_is_kept_unchanged_and_short_axes_padded():
    counts = np.arange(2048, dtype=np.uint16)[None] % 9
    got, rec = to_grid(counts, axis_edges({"offset": 0, "scale": 10, "units": "eV"}, 2048, "x"), "x")
    assert not rec["rebinned"] and np.array_equal(got[0, :2048], counts[0]) and not got[0, 2048:].any()
    assert "kept as is" in summary_line(rec)


def test_explicit_axes():
    v = np.array([0.0, 10, 20, 30, 40])
    e = axis_edges({"axis": v / 1000, "units": "keV"}, 5, "x")
    assert np.array_equal(e, np.arange(6) * 10.0)  # uniform explicit values: the grid
    # a non-uniform axis is rebinned by overlap (channel k covers [v_k, v_k+1))
    v = np.array([0.0, 5, 25, 40, 41])
    e = axis_edges({"axis": v, "units": "eV"}, 5, "x")
    assert np.array_equal(e, [0, 5, 25, 40, 41, 42])
    counts = np.array([[10.0, 20, 30, 4, 8]])
    got, rec = to_grid(counts, e, "x")
    # by hand: [0,5)->ch0; [5,25) 20 counts: 5 in ch0, 10 in ch1, 5 in ch2; [25,40) 30: 10 in ch2, 20 in ch3
    assert np.allclose(got[0, :5], [15, 10, 15, 20, 12]) and rec["explicit_axis"]
    with pytest.raises(InputError, match=r"x: energy axis: channel energies must increase: channel 2"):
        axis_edges({"axis": [0, 10, 10, 20], "units": "eV"}, 4, "x")
    with pytest.raises(InputError, match="expected 4 channel energies"):
        axis_edges({"axis": [0, 10, 20], "units": "eV"}, 4, "x")


def test_true_errors():
    with pytest.raises(InputError, match="x: energy axis: expected units keV or eV, got 'nm'"):
        axis_edges({"offset": 0, "scale": 1, "units": "nm"}, 3, "x")
    with pytest.raises(InputError, match="positive channel width"):
        axis_edges({"offset": 0, "scale": 0, "units": "eV"}, 3, "x")
    with pytest.raises(InputError, match="outside mingraph's 0-30000 eV"):
        to_grid(np.ones((1, 10)), 40000 + np.arange(11.0), "x")
    # mostly outside: an axis in eV written as keV would put everything far above 30 keV
    with pytest.raises(InputError, match=r"\d+ % of the counts lie outside 0-30 keV"):
        to_grid(np.ones((1, 100)), -900 + 10.0 * np.arange(101), "x")
    assert GRID_EDGES_EV[-1] == 30000


def test_hspy_non_uniform_axis_file(tmp_path):
    pytest.importorskip("h5py")
    from rsciio.hspy import file_writer

    from mingraph.acquire.formats import read_hypermap

    rng = np.random.default_rng(2)
    cube = rng.poisson(3, (3, 4, 200)).astype(np.uint16)
    energy = np.cumsum(np.r_[0.1, np.linspace(0.005, 0.015, 199)])  # keV, widths 5-15 eV
    axes = [
        {"name": "y", "size": 3, "offset": 0, "scale": 2.5, "units": "µm", "navigate": True},
        {"name": "x", "size": 4, "offset": 0, "scale": 2.5, "units": "µm", "navigate": True},
        {"name": "Energy", "axis": energy, "units": "keV", "navigate": False},
    ]
    sig = {
        "data": cube,
        "axes": axes,
        "metadata": {"General": {"title": "EDS"}, "Signal": {"signal_type": "EDS_SEM"}},
        "original_metadata": {},
    }
    sig.update(
        tmp_parameters={}, attributes={"_lazy": False}, package_info={}, learning_results={}, models={}
    )
    file_writer(str(tmp_path / "n.hspy"), sig, show_progressbar=False)
    hm = read_hypermap(tmp_path / "n.hspy")
    assert hm.pixel_size_um == 2.5 and hm.calibration["explicit_axis"]
    edges = np.append(energy, 2 * energy[-1] - energy[-2]) * 1000
    ref = brute_force(cube[1, 2].astype(float), edges)
    assert np.abs(hm.cube[1, 2].astype(float) - ref).max() <= 1
    assert hm.cube.sum(dtype=np.int64) == cube.sum(dtype=np.int64)  # all inside 0-30 keV


def test_lazy_block_reading_equals_the_whole_map(tmp_path, monkeypatch):
    pytest.importorskip("h5py")
    from rsciio.hspy import file_writer

    from mingraph.acquire import formats
    from mingraph.acquire.dataset import open_dataset
    from mingraph.acquire.formats import hypermaps
    from mingraph.acquire.importing import import_field

    rng = np.random.default_rng(4)
    cube = rng.poisson(1.5, (7, 5, 1024)).astype(np.uint16)
    axes = [
        {"name": "y", "size": 7, "offset": 0, "scale": 1, "units": "µm", "navigate": True},
        {"name": "x", "size": 5, "offset": 0, "scale": 1, "units": "µm", "navigate": True},
        {"name": "Energy", "size": 1024, "offset": -0.2, "scale": 0.02, "units": "keV", "navigate": False},
    ]
    md = {"General": {"title": "EDS"}, "Signal": {"signal_type": "EDS_SEM"}}
    sig = {"data": cube, "axes": axes, "metadata": md, "original_metadata": {}, "tmp_parameters": {}}
    sig.update(attributes={"_lazy": False}, package_info={}, learning_results={}, models={})
    file_writer(str(tmp_path / "m.hspy"), sig, show_progressbar=False)
    whole = formats.read_hypermap(tmp_path / "m.hspy")  # in memory, at once
    monkeypatch.setattr(hypermaps, "BLOCK_BYTES", 5 * 3000 * 4 * 2)  # two rows a block
    (tmp_path / "w").mkdir()
    lazy = formats.read_hypermap(tmp_path / "m.hspy", tmp_path / "w")
    assert isinstance(lazy.cube, np.memmap) and lazy.cube.dtype == whole.cube.dtype == np.uint8
    assert np.array_equal(lazy.cube, whole.cube) and lazy.calibration == whole.calibration
    Image = pytest.importorskip("PIL.Image")
    Image.fromarray(np.zeros((7, 5), np.uint16)).save(tmp_path / "b.png")
    ds = open_dataset(import_field(tmp_path / "out" / "ds", tmp_path / "b.png", spectra=tmp_path / "m.hspy"))
    stored = np.load(ds.path / "spectra" / "000000.npy")
    assert np.array_equal(stored, whole.cube) and stored.dtype == np.uint8
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["ds"]  # no work folder left behind
