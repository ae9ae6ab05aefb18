"""Pictures people look at: phase maps with legends, BSE images, overlays (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mingraph.common.files import save_figure


def plot_text(name: object) -> str:
    """A name as matplotlib text shown literally: ``$`` escaped, so that a name holding dollar signs
    is neither typeset as mathtext nor (``$x^$``) a parse error that stops the run.

    Parameters
    ----------
    name : object
        The name (``str(name)`` is used).

    Returns
    -------
    str
        The text to give matplotlib.
    """
    return str(name).replace("$", r"\$")


def phase_colours(n: int) -> np.ndarray:
    """A fixed (n, 3) float RGB palette: tab20, tab20b, tab20c, then golden-ratio hues."""
    import matplotlib

    base = [matplotlib.colormaps[m].colors for m in ("tab20", "tab20b", "tab20c")]
    cols = [c for group in base for c in group]
    import colorsys

    i = 0
    while len(cols) < n:
        cols.append(colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.65, 0.9))
        i += 1
    return np.asarray(cols[:n], dtype=np.float64)


def hex_colour(rgb) -> str:
    """``"#rrggbb"`` of an RGB triple in 0..1 (a row of :func:`phase_colours`)."""
    r, g, b = (int(round(255 * float(v))) for v in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def phase_rgb(labels: np.ndarray, n_classes: int, invalid=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Colour a label map (H, W) -> (H, W, 3) float; -1 (invalid/unknown) gets ``invalid``."""
    pal = np.vstack([phase_colours(max(n_classes, 1)), np.asarray(invalid, dtype=np.float64)[None]])
    idx = np.where(labels < 0, len(pal) - 1, labels)
    return pal[idx]


def save_tile_figure(
    path: str | Path,
    bse: np.ndarray,
    labels: np.ndarray | None,
    class_names: list[str],
    title: str = "",
    eds_rc: np.ndarray | None = None,
) -> Path:
    """BSE beside its phase map with a legend of the phases present; EDS points drawn if given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    path = Path(path)
    ncol = 2 if labels is not None else 1
    fig, axes = plt.subplots(
        1, ncol, figsize=(5 * ncol + (2.5 if labels is not None else 0), 5), squeeze=False
    )
    ax = axes[0, 0]
    ax.imshow(bse, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title("BSE")
    if eds_rc is not None and len(eds_rc):
        ax.scatter(eds_rc[:, 1], eds_rc[:, 0], s=4, c="red", marker="o", linewidths=0)
    if labels is not None:
        ax2 = axes[0, 1]
        ax2.imshow(phase_rgb(labels, len(class_names)), interpolation="nearest")
        ax2.set_title("phases")
        present, counts = np.unique(labels[labels >= 0], return_counts=True)
        order = present[np.argsort(-counts)]
        pal = phase_colours(len(class_names))
        handles = [Patch(color=pal[k], label=plot_text(class_names[k])) for k in order[:20]]
        if len(order) > 20:
            handles.append(Patch(color="white", label=f"+{len(order) - 20} more"))
        ax2.legend(handles=handles, loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, frameon=False)
    for a in axes.ravel():
        a.set_xticks([])
        a.set_yticks([])
    if title:
        fig.suptitle(plot_text(title))
    fig.tight_layout()
    return save_figure(fig, path)


def save_confusion_png(path: str | Path, cm: np.ndarray, class_names: list[str], title: str = "") -> Path:
    """Row-normalised confusion matrix (recall per true class) over the classes that occur."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm, dtype=np.float64)
    keep = np.flatnonzero((cm.sum(0) > 0) | (cm.sum(1) > 0))
    sub = cm[np.ix_(keep, keep)]
    norm = sub / np.maximum(sub.sum(1, keepdims=True), 1)
    n = len(keep)
    size = min(max(4.0, 0.28 * n + 2), 16)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    names = [plot_text(class_names[k]) for k in keep]
    ax.set_xticks(range(n), names, rotation=90, fontsize=7)
    ax.set_yticks(range(n), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 25:
        for i in range(n):
            for j in range(n):
                if sub[i, j] > 0:
                    ax.text(
                        j,
                        i,
                        f"{norm[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black",
                    )
    fig.colorbar(im, ax=ax, fraction=0.04, label="fraction of true class")
    if title:
        ax.set_title(plot_text(title))
    return save_figure(fig, path, bbox_inches="tight")


def save_reliability_png(path: str | Path, bins: dict[str, dict], title: str = "") -> Path:
    """Reliability diagram: each method's accuracy against its mean confidence per bin (the
    diagonal is perfect calibration), its ECE in the legend, and the pixels per bin below.

    ``bins``: method name -> :func:`mingraph.common.calibration.reliability_bins` (pooled) result.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mingraph.common.calibration import bins_ece

    fig, (ax, hist) = plt.subplots(
        2, 1, figsize=(5.2, 6.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="calibrated")
    for k, (name, b) in enumerate(bins.items()):
        full = np.asarray(b["count"]) > 0
        edges = np.asarray(b["edges"])
        colour = f"C{k}"
        ax.plot(
            np.asarray(b["confidence"])[full],
            np.asarray(b["accuracy"])[full],
            "o-",
            ms=3,
            color=colour,
            label=plot_text(f"{name} (ECE {bins_ece(b):.3f})"),
        )
        width = np.diff(edges)
        share = np.asarray(b["count"]) / max(int(np.sum(b["count"])), 1)
        hist.bar(edges[:-1], share, width=width, align="edge", fill=False, edgecolor=colour, lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy in bin")
    ax.legend(fontsize=7, loc="upper left")
    hist.set_xlabel("confidence")
    hist.set_ylabel("share of pixels")
    if title:
        ax.set_title(plot_text(title), fontsize=9)
    return save_figure(fig, path, bbox_inches="tight")


def save_overlay_png(
    path: str | Path,
    bse: np.ndarray,
    panels: dict[str, np.ndarray],
    class_names: list[str],
    eds_rc: np.ndarray | None = None,
    title: str = "",
) -> Path:
    """BSE with EDS points, then one phase map per panel (truth, predictions), with a shared legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    n = 1 + len(panels)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n + 2.2, 3.6), squeeze=False)
    ax = axes[0, 0]
    ax.imshow(bse, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    if eds_rc is not None and len(eds_rc):
        ax.scatter(eds_rc[:, 1], eds_rc[:, 0], s=5, c="red", linewidths=0)
    ax.set_title("BSE + EDS points" if eds_rc is not None else "BSE", fontsize=9)
    present: set[int] = set()
    for a, (name, lab) in zip(axes[0, 1:], panels.items()):
        a.imshow(phase_rgb(lab, len(class_names)), interpolation="nearest")
        a.set_title(name, fontsize=9)
        present |= set(np.unique(lab[lab >= 0]).tolist())
    for a in axes.ravel():
        a.set_xticks([])
        a.set_yticks([])
    pal = phase_colours(len(class_names))
    first = next(iter(panels.values())) if panels else None
    counts = {k: int((first == k).sum()) for k in present} if first is not None else {}
    order = sorted(present, key=lambda k: -counts.get(k, 0))[:18]
    fig.legend(
        handles=[Patch(color=pal[k], label=plot_text(class_names[k])) for k in order],
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        fontsize=7,
        frameon=False,
    )
    if title:
        fig.suptitle(plot_text(title), fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, bbox_inches="tight")


def _display_stride(shape: tuple[int, int], max_side: int = 1600) -> int:
    """Subsampling step that keeps a picture of a large field at most ``max_side`` pixels wide."""
    return max(1, int(np.ceil(max(shape) / max_side)))


def save_phase_overlay_png(
    path: str | Path,
    bse: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    eds_rc: np.ndarray | None = None,
    alpha: float = 0.55,
    max_points: int = 20000,
    colours: np.ndarray | None = None,
) -> Path:
    """Phase colours blended over the BSE image, EDS points marked, legend by area (large fields subsampled).

    ``colours`` (n_classes, 3) RGB in 0..1, e.g. from a mineral list; default :func:`phase_colours`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    s = _display_stride(labels.shape)
    lab, grey = labels[::s, ::s], bse[::s, ::s]
    pal = phase_colours(len(class_names)) if colours is None else np.asarray(colours, dtype=np.float64)
    rgb = (1 - alpha) * np.repeat(grey[..., None], 3, -1) + alpha * pal[np.clip(lab, 0, None)]
    rgb[lab < 0] = np.repeat(grey[..., None], 3, -1)[lab < 0] * 0.5
    hgt, wid = lab.shape
    scale = 9.0 / max(hgt, wid)
    fig, ax = plt.subplots(figsize=(wid * scale + 3.0, hgt * scale + 0.6))
    ax.imshow(np.clip(rgb, 0, 1), interpolation="nearest")
    if eds_rc is not None and len(eds_rc):
        pts = (
            eds_rc
            if len(eds_rc) <= max_points
            else eds_rc[np.random.default_rng(0).choice(len(eds_rc), max_points, replace=False)]
        )
        ax.scatter(
            pts[:, 1] / s,
            pts[:, 0] / s,
            s=3,
            c="white",
            edgecolors="black",
            linewidths=0.2,
            label="EDS points",
        )
    ids, counts = np.unique(labels[labels >= 0], return_counts=True)
    total = max(int(counts.sum()), 1)
    handles = [
        Patch(color=pal[k], label=f"{plot_text(class_names[k])} ({100 * c / total:.1f} %)")
        for k, c in sorted(zip(ids, counts), key=lambda x: -x[1])[:24]
    ]
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(
        f"phase map over BSE ({labels.shape[0]}×{labels.shape[1]} px{f', shown 1:{s}' if s > 1 else ''})",
        fontsize=9,
    )
    return save_figure(fig, path, bbox_inches="tight")


def save_confidence_png(path: str | Path, confidence: np.ndarray, valid: np.ndarray) -> Path:
    """Per-pixel confidence (softmax probability of the chosen phase) with a colour bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = _display_stride(confidence.shape)
    c = np.ma.masked_where(~valid[::s, ::s], confidence[::s, ::s])
    hgt, wid = c.shape
    scale = 8.0 / max(hgt, wid)
    fig, ax = plt.subplots(figsize=(wid * scale + 1.6, hgt * scale + 0.6))
    im = ax.imshow(c, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("confidence (probability of the chosen phase; grey = not specimen)", fontsize=9)
    ax.set_facecolor("0.6")
    fig.colorbar(im, ax=ax, fraction=0.04)
    return save_figure(fig, path, bbox_inches="tight")
