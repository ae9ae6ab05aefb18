"""Plots of liberation and grade–recovery (colours from the mineral list, as in the phase map)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mingraph.analyse.plots import plot_text
from mingraph.common.files import save_figure


def liberation_plot(path: Path, res, targets: list[int]) -> Path:
    """Cumulative liberation yield of each target (% of it in particles of at least x % grade), 95 % whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    x = np.arange(101.0)
    edges = np.array([0.0, 0.0, *np.arange(10.0, 101.0, 10.0)])  # lower grade of each liberation class
    by_id = {t.class_id: t for t in res.targets}
    for k in targets:
        t = by_id[k]
        col = res.minerals.colours[k]
        ax.plot(x, t.yield_pct, "-", color=col, lw=1.8, label=plot_text(res.names[k]))
        if t.yield_ci is not None:
            y = t.yield_pct[edges.astype(int)]
            err = np.clip(np.vstack([y - t.yield_ci[0], t.yield_ci[1] - y]), 0, None)
            ax.errorbar(edges[1:], y[1:], yerr=err[:, 1:], fmt="none", ecolor=col, elinewidth=0.8, capsize=2)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 102)
    ax.set_xlabel("particle grade of the mineral, area % ≥ x")
    ax.set_ylabel("cumulative liberation yield, % of the mineral")
    ax.set_title(f"Cumulative liberation yield ({res.particles.n:,} particles, 95 % intervals)", fontsize=10)
    return _finish(fig, ax, path, bool(targets))


def grade_recovery_plot(path: Path, res, targets: list[int]) -> Path:
    """Theoretical grade–recovery curves: particles taken richest first (perfect separation)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    by_id = {t.class_id: t for t in res.targets}
    basis = "mass"
    for k in targets:
        gr = by_id[k].grade_recovery
        basis = gr["basis"]
        ax.plot(
            gr["recovery_pct"],
            gr["grade_pct"],
            "-",
            color=res.minerals.colours[k],
            lw=1.8,
            label=plot_text(res.names[k]),
        )
        if gr.get("ci") is not None:
            band = np.arange(1.0, 101.0)
            ax.fill_between(band, gr["ci"][0], gr["ci"][1], color=res.minerals.colours[k], alpha=0.2, lw=0)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 102)
    ax.set_xlabel("recovery of the mineral (%)")
    ax.set_ylabel(f"grade of the concentrate ({basis} % of the mineral)")
    ax.set_title("Theoretical grade–recovery (perfect separation; band: 95 % interval)", fontsize=10)
    return _finish(fig, ax, path, bool(targets))


def _finish(fig, ax, path: Path, legend: bool) -> Path:
    import matplotlib.pyplot as plt

    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    try:
        return save_figure(fig, path, dpi=120)
    finally:
        plt.close(fig)
