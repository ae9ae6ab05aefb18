"""Pictures for docs/simulator.md: example tiles (BSE + phase map) and mineral spectra.

Run ``python -m mingraph.analyse.simulator_figures docs/img``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from mingraph.acquire.fields import channel_energies_ev
from mingraph.acquire.simulate import simulate_tile
from mingraph.acquire.simulate.minerals import MINERALS
from mingraph.analyse.plots import phase_colours
from mingraph.common.files import save_figure

TILE_SEEDS = (3, 5, 11, 21)
SPECTRUM_MINERALS = (
    "quartz",
    "albite",
    "microcline",
    "cryolite",
    "zircon",
    "cassiterite",
    "pyrite",
    "galena",
)


def tile_figure(out: Path, size: int = 150) -> Path:
    """BSE and phase map of a few tiles, legend listing the phases present."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    colours = phase_colours(len(MINERALS))  # the colours of every phase map mingraph draws
    kind_grey = {1: (0.15, 0.15, 0.2), 2: (0.0, 0.0, 0.0), 3: (1.0, 1.0, 1.0)}
    fig, axes = plt.subplots(2, len(TILE_SEEDS), figsize=(3.2 * len(TILE_SEEDS), 7.6))
    for j, seed in enumerate(TILE_SEEDS):
        t = simulate_tile(seed, size)
        rgb = np.zeros((*t.labels.shape, 3))
        rgb[t.valid] = colours[t.labels[t.valid]]
        for k, g in kind_grey.items():
            rgb[t.kind == k] = g
        axes[0, j].imshow(t.bse, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[0, j].set_title(f"seed {seed}: {t.assemblage}", fontsize=8)
        axes[1, j].imshow(rgb, interpolation="nearest")
        present, counts = np.unique(t.labels[t.valid], return_counts=True)
        order = np.argsort(-counts)
        handles = [Patch(color=colours[present[i]], label=MINERALS[present[i]].name) for i in order]
        handles += [
            Patch(color=kind_grey[k], label=n)
            for k, n in ((1, "epoxy"), (2, "hole"), (3, "beyond edge"))
            if (t.kind == k).any()
        ]
        axes[1, j].legend(
            handles=handles,
            fontsize=6,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.02),
            ncol=2,
            frameon=False,
        )
        for a in axes[:, j]:
            a.set_xticks([])
            a.set_yticks([])
    axes[0, 0].set_ylabel("BSE")
    axes[1, 0].set_ylabel("phases")
    fig.tight_layout()
    return save_figure(fig, out / "sim-tiles.png", dpi=90)


def spectra_figure(out: Path) -> Path:
    """Expected spectra of several minerals with one Poisson draw each, log counts, 0-12 keV."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mingraph.acquire.simulate.eds import SimulatedEds
    from mingraph.acquire.simulate.minerals import mineral_index

    e_kev = channel_energies_ev() / 1000.0
    n = len(SPECTRUM_MINERALS)
    fig, axes = plt.subplots(n // 2, 2, figsize=(11, 1.9 * (n // 2) + 0.6), sharex=True)
    for ax, name in zip(axes.T.ravel(), SPECTRUM_MINERALS):
        src = SimulatedEds(np.full((1, 1), mineral_index(name)), seed=1, params={})
        noisy = src.spectra(np.array([0]), np.array([0]))[0]
        expected = src.expected(np.array([0]), np.array([0]))[0]
        ax.step(e_kev, noisy, where="mid", lw=0.4, color="0.6", alpha=0.7, label="one 1.25 ms draw")
        ax.plot(e_kev, expected, lw=0.9, color="C3", label="expected")
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_ylim(0, max(expected.max(), noisy.max()) * 1.5)
        ax.set_xlim(0, 12)
        ax.text(
            0.98,
            0.85,
            f"{name}  {MINERALS[mineral_index(name)].formula}",
            transform=ax.transAxes,
            ha="right",
            fontsize=9,
        )
        ax.set_ylabel("counts / 10 eV", fontsize=8)
    axes[0, 0].legend(fontsize=7, loc="upper center")
    for ax in axes[-1]:
        ax.set_xlabel("energy (keV)")
    fig.tight_layout()
    return save_figure(fig, out / "sim-spectra.png", dpi=80)


def boundary_figure(out: Path) -> Path:
    """Expected spectra across a quartz | zircon boundary: the footprint mixes phases within ~1-2 px."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mingraph.acquire.simulate.eds import SimulatedEds
    from mingraph.acquire.simulate.minerals import mineral_index

    lab = np.full((5, 9), mineral_index("quartz"))
    lab[:, 5:] = mineral_index("zircon")
    src = SimulatedEds(lab, seed=0, params={})
    cols = np.arange(1, 9)
    ex = src.expected(np.full(cols.size, 2), cols)
    e_kev = channel_energies_ev() / 1000.0
    fig, ax = plt.subplots(figsize=(8, 3.2))
    cmap = plt.get_cmap("viridis")
    for i, c in enumerate(cols):
        ax.plot(
            e_kev,
            ex[i],
            lw=0.9,
            color=cmap(i / (cols.size - 1)),
            label=f"col {c} ({'qtz' if c < 5 else 'zrn'})",
        )
    ax.set_xlim(1.0, 2.6)
    ax.set_xlabel("energy (keV)")
    ax.set_ylabel("expected counts / 10 eV")
    ax.set_title(
        "Si Kα (1.74 keV) and Zr Lα (2.04 keV) across a quartz | zircon boundary at col 4.5", fontsize=9
    )
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return save_figure(fig, out / "sim-boundary.png", dpi=80)


def make_all(out: str | Path) -> list[Path]:
    """Write every docs picture into ``out``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return [tile_figure(out), spectra_figure(out), boundary_figure(out)]


if __name__ == "__main__":
    for p in make_all(sys.argv[1] if len(sys.argv) > 1 else "docs/img"):
        print(p, p.stat().st_size // 1024, "KB")
