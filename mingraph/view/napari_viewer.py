"""A :class:`~mingraph.view.scene.Scene` as napari layers (napari imported here only), the
spectrum dock that shows a selected EDS point, and the offscreen screenshot of the scene."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mingraph.common.errors import InputError, import_extra
from mingraph.view.scene import Layer, Scene

MISSING = "napari is not installed: pip install 'mingraph[view]'"


def import_napari():
    """The napari module, or InputError with the one line that says what to install."""
    return import_extra("napari", MISSING)


def label_colormap(layer: Layer):
    """The napari DirectLabelColormap of a labels layer: its colours, ``background`` transparent."""
    from napari.utils.colormaps import DirectLabelColormap

    colours = {None: (0.0, 0.0, 0.0, 0.0), layer.background: (0.0, 0.0, 0.0, 0.0)}
    colours |= {int(k): tuple(v) for k, v in layer.colours.items() if int(k) != layer.background}
    return DirectLabelColormap(color_dict=colours, background_value=layer.background)


def add_layer(viewer, layer: Layer):
    """Add one scene layer to a napari viewer; returns the napari layer."""
    import pandas as pd

    common = dict(name=layer.name, scale=layer.scale, visible=layer.visible, opacity=layer.opacity)
    if layer.kind == "image":
        return viewer.add_image(
            layer.data, colormap=layer.colormap, contrast_limits=layer.contrast, units="µm", **common
        )
    if layer.kind == "labels":
        ids = sorted(layer.names)
        features = pd.DataFrame({"index": ids, "name": [layer.names[k] for k in ids]})
        return viewer.add_labels(
            layer.data, colormap=label_colormap(layer), features=features, units="µm", **common
        )
    if layer.kind == "points":
        size = max(2.0, 0.008 * max(1, *(int(np.ptp(layer.data[:, k])) for k in (0, 1) if len(layer.data))))
        return viewer.add_points(
            layer.data,
            features=pd.DataFrame(layer.properties),
            face_color=layer.point_colours,
            border_color="black",
            border_width=0.15,
            size=size,
            units="µm",
            **common,
        )
    raise ValueError(layer.kind)


def build_viewer(scene: Scene, show: bool = True, dock: bool = True):
    """A napari viewer holding ``scene`` (the view fitted to it), with the spectrum dock."""
    napari = import_napari()
    viewer = napari.Viewer(title=f"mingraph view: {scene.run}", show=show)
    layers = {la.name: add_layer(viewer, la) for la in scene.layers}
    viewer.scale_bar.visible = True
    if "EDS points" in layers and scene.points is not None and dock:
        spectrum_dock(viewer, layers["EDS points"], scene)
    viewer.reset_view()
    return viewer


def spectrum_dock(viewer, points_layer, scene: Scene) -> None:
    """A matplotlib dock that draws the selected point's spectrum and its mineral's expectation."""
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    from mingraph.view.spectra import draw_spectrum, point_spectrum

    fig = Figure(figsize=(5, 3), tight_layout=True)
    canvas = FigureCanvasQTAgg(fig)
    ax = fig.add_subplot()
    viewer.window.add_dock_widget(canvas, name="EDS spectrum", area="bottom")

    def on_select(event=None) -> None:
        chosen = sorted(points_layer.selected_data)
        if not chosen:
            return
        i = chosen[0]
        props = points_layer.features.iloc[i]
        title = (
            f"point {i} at (row {int(points_layer.data[i][0])}, col {int(points_layer.data[i][1])}): "
            + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in props.items())
        )
        try:
            e, y, expected = point_spectrum(scene.points, i)
        except InputError as err:
            ax.clear()
            ax.set_title(str(err), fontsize=8)
        else:
            draw_spectrum(ax, e, y, expected, title)
        canvas.draw_idle()

    points_layer.selected_data.events.items_changed.connect(on_select)


def screenshot(scene: Scene, path: str | os.PathLike, size: tuple[int, int] = (1100, 850)) -> Path:
    """Render ``scene`` to a PNG (written atomically): a window of ``size`` (width, height) px, the
    view fitted to the data with no margin, the canvas only.  napari's canvas needs an X display
    (Xvfb will do: ``mingraph view --screenshot`` runs itself under xvfb-run); a hidden canvas
    does not fit the view to its size, so the window is shown, on that display.  Returns the path."""
    from PIL import Image
    from qtpy.QtWidgets import QApplication

    from mingraph.common.files import atomic_file

    viewer = build_viewer(scene, show=True, dock=False)
    try:
        viewer.window._qt_window.resize(*size)
        for _ in range(10):
            QApplication.processEvents()
        viewer.reset_view(margin=0.0)
        QApplication.processEvents()
        rgba = np.asarray(viewer.screenshot(canvas_only=True, flash=False))
    finally:
        viewer.close()
    with atomic_file(path) as tmp:
        Image.fromarray(rgba[..., :3]).save(tmp, format="PNG")
    return Path(path)
