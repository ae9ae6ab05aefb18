"""Plots of the mineralogy tables: modal bar chart, grain-size distribution, association matrix
(colours from :func:`mingraph.analyse.plots.phase_colours`, as in the phase map)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mingraph.analyse.plots import plot_text
from mingraph.common.files import save_figure


def _err(ci, rows, key, values):
    """xerr (2, m) from a (2, n) interval for the rows shown (None without an interval)."""
    if ci is None:
        return None
    lo = np.array([ci[0, r["class_id"]] for r in rows])
    hi = np.array([ci[1, r["class_id"]] for r in rows])
    v = np.asarray(values, dtype=np.float64)
    return np.nan_to_num(np.vstack([np.clip(v - lo, 0, None), np.clip(hi - v, 0, None)]))


def _no_data(ax, text: str, color: str) -> None:
    """Say in the middle of an empty plot why it is empty."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=11, color=color)


def modal_plot(path: Path, modal, colours: np.ndarray, area_ci=None, mass_ci=None) -> Path:
    """Horizontal bars of area % (and mass %) per phase, with 95 % interval whiskers when given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted((r for r in modal.rows if r["pixels"] > 0), key=lambda r: -r["area_pct"])
    has_mass = any(r["mass_pct"] is not None for r in rows)
    h = max(2.2, 0.38 * len(rows) + 1.3)
    fig, ax = plt.subplots(figsize=(7.5, h))
    y = np.arange(len(rows))
    bar_h = 0.38 if has_mass else 0.7
    cols = [colours[r["class_id"]] for r in rows]
    area = [r["area_pct"] for r in rows]
    ax.barh(
        y - (bar_h / 2 if has_mass else 0),
        area,
        height=bar_h,
        color=cols,
        edgecolor="black",
        linewidth=0.5,
        label="area %",
        xerr=_err(area_ci, rows, "area_pct", area),
        error_kw={"elinewidth": 0.8, "capsize": 2},
    )
    if has_mass:
        mass = [r["mass_pct"] if r["mass_pct"] is not None else 0.0 for r in rows]
        ax.barh(
            y + bar_h / 2,
            mass,
            height=bar_h,
            color=cols,
            edgecolor="black",
            linewidth=0.5,
            hatch="///",
            alpha=0.75,
            label="mass %",
            xerr=_err(mass_ci, rows, "mass_pct", mass),
            error_kw={"elinewidth": 0.8, "capsize": 2},
        )
    xmax = max([*area, *([r["mass_pct"] or 0.0 for r in rows] if has_mass else [])], default=1.0)
    for i, r in enumerate(rows):
        m_txt = "-" if r["mass_pct"] is None else f"{r['mass_pct']:.1f}"
        txt = f"{r['area_pct']:.1f}" + (f" / {m_txt}" if has_mass else "")
        ax.text(max(r["area_pct"], r["mass_pct"] or 0) + 0.01 * xmax, i, txt, va="center", fontsize=8)
    if not rows:
        _no_data(ax, "no classified pixels", "0.4")
    ax.set_yticks(y)
    ax.set_yticklabels([plot_text(r["phase"]) for r in rows], fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, xmax * 1.18 + 1e-9)
    ax.set_xlabel("area % / mass %" if has_mass else "area %")
    left = []
    if modal.n_unclassified:
        left.append(f"unclassified {100 * modal.unclassified_fraction:.1f} %")
    if modal.n_low_confidence:
        left.append(f"low confidence {100 * modal.low_confidence_fraction:.1f} %")
    ax.set_title(
        "Modal mineralogy (of classified pixels"
        + (", 95 % intervals)" if area_ci is not None else ")")
        + (f"\n{', '.join(left)} of valid pixels, not included" if left else ""),
        fontsize=10,
    )
    if has_mass:
        ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    fig.tight_layout()
    try:
        return save_figure(fig, path, dpi=120)
    finally:
        plt.close(fig)


def grain_size_plot(path: Path, grains, modal, colours: np.ndarray, max_phases: int = 8) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_area = sorted((r for r in modal.rows if r["pixels"] > 0), key=lambda r: -r["area_pct"])
    main = [r["class_id"] for r in by_area[:max_phases]]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for k in main:
        d = [r for r in grains.distribution if r["class_id"] == k]
        if not d:
            continue
        x = [d[0]["ecd_min_um"]] + [r["ecd_max_um"] for r in d]
        yv = [d[0]["cum_area_pct_passing"] - d[0]["area_pct"]] + [r["cum_area_pct_passing"] for r in d]
        ph = grains.phases[k]
        ax.plot(
            x,
            yv,
            "-o",
            ms=3,
            color=colours[k],
            lw=1.8,
            label=f"{plot_text(ph['phase'])} (n={ph['grains']}, D50={ph['d50_um']:.3g} µm)",
        )
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_ylim(0, 100)
    ax.set_xlabel("equivalent circle diameter, ECD (µm)")
    ax.set_ylabel("cumulative % passing (by area)")
    ax.set_title(
        "Grain-size distribution"
        + (f" ({len(main)} most abundant phases)" if len(by_area) > max_phases else ""),
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    if main:
        ax.legend(fontsize=8, loc="upper left", frameon=True)
    else:
        _no_data(ax, "no grains", "0.4")
    fig.tight_layout()
    try:
        return save_figure(fig, path, dpi=120)
    finally:
        plt.close(fig)


def association_plot(path: Path, names: list[str], pct: np.ndarray) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = len(names)
    size = max(4.5, 0.55 * m + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    shown = np.ma.masked_where(np.eye(m, dtype=bool), pct)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.85")
    im = ax.imshow(shown, cmap=cmap, vmin=0, vmax=100)
    ax.set_xticks(range(m))
    ax.set_yticks(range(m))
    ax.set_xticklabels([plot_text(n) for n in names], rotation=45, ha="right", fontsize=9)
    ax.set_yticklabels([plot_text(n) for n in names], fontsize=9)
    if m <= 20:
        for i in range(m):
            for j in range(m):
                v = pct[i, j]
                if i != j and v > 0:
                    ax.text(
                        j,
                        i,
                        f"{v:.0f}" if v >= 0.5 else "<1",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if v < 60 else "black",
                    )
    if not np.any(pct > 0):
        _no_data(ax, "no boundaries between phases", "0.3")
    ax.set_xlabel("associated with")
    ax.set_ylabel("phase (row = 100 % of its boundary)")
    ax.set_title("Phase association (% of boundary length)", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="%")
    fig.tight_layout()
    try:
        return save_figure(fig, path, dpi=120)
    finally:
        plt.close(fig)
