"""Pictures people look at: phase maps with legends, BSE images, overlays (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


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


def phase_rgb(labels: np.ndarray, n_classes: int, invalid=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Colour a label map (H, W) -> (H, W, 3) float; -1 (invalid/unknown) gets ``invalid``."""
    pal = np.vstack([phase_colours(max(n_classes, 1)), np.asarray(invalid, dtype=np.float64)[None]])
    idx = np.where(labels < 0, len(pal) - 1, labels)
    return pal[idx]


def save_tile_figure(path: str | Path, bse: np.ndarray, labels: np.ndarray | None, class_names: list[str], title: str = "", eds_rc: np.ndarray | None = None) -> Path:
    """BSE beside its phase map with a legend of the phases present; EDS points drawn if given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    path = Path(path)
    ncol = 2 if labels is not None else 1
    fig, axes = plt.subplots(1, ncol, figsize=(5 * ncol + (2.5 if labels is not None else 0), 5), squeeze=False)
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
        handles = [Patch(color=pal[k], label=class_names[k]) for k in order[:20]]
        if len(order) > 20:
            handles.append(Patch(color="white", label=f"+{len(order) - 20} more"))
        ax2.legend(handles=handles, loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, frameon=False)
    for a in axes.ravel():
        a.set_xticks([])
        a.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path
