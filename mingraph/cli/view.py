"""``mingraph view``: a predict or predict-sample output in napari (the ``view`` extra)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click

from mingraph.cli.common import user_errors

XVFB_SCREEN = "-screen 0 1280x1024x24"
NO_DISPLAY = (
    "no display to render on: install Xvfb (apt-get install xvfb xauth libxkbcommon-x11-0 "
    "libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 "
    "libxcb-xkb1 libxcb-shape0 libxcb-cursor0), or run where DISPLAY is set"
)


def under_xvfb(argv: list[str]) -> int | None:
    """Run this command again under xvfb-run (a virtual X display); its exit status, or None when
    xvfb-run is not installed."""
    xvfb = shutil.which("xvfb-run")
    if xvfb is None:
        return None
    env = dict(os.environ, MINGRAPH_VIEW_XVFB="1")
    cmd = [xvfb, "-a", "-s", XVFB_SCREEN, sys.executable, "-m", "mingraph.cli", *argv]
    return subprocess.run(cmd, env=env).returncode


@click.command("view")
@click.argument("run", type=click.Path(path_type=Path))
@click.option(
    "--screenshot",
    type=click.Path(path_type=Path),
    help="Render the scene to this PNG without a window and exit (under xvfb-run when there is one).",
)
@user_errors
def view_cmd(run: Path, screenshot: Path | None) -> None:
    """Open RUN (a predict or predict-sample output) in napari: BSE, phase map, confidence,
    unclassified pixels and the EDS points; select a point to see its spectrum.

    Needs napari: pip install 'mingraph[view]'."""
    from mingraph.view.napari_viewer import import_napari
    from mingraph.view.runs import read_scene

    scene = read_scene(run)
    import_napari()
    if screenshot is not None and not os.environ.get("MINGRAPH_VIEW_XVFB"):
        rc = under_xvfb(["view", str(run), "--screenshot", str(screenshot)])
        if rc is not None:
            raise SystemExit(rc)
        if not os.environ.get("DISPLAY"):
            click.echo(f"Error: {NO_DISPLAY}", err=True)
            raise SystemExit(2)
    from mingraph.view import napari_viewer

    if screenshot is not None:
        click.echo(f"wrote {napari_viewer.screenshot(scene, screenshot)}")
        return
    napari = import_napari()
    napari_viewer.build_viewer(scene, show=True)
    napari.run()
