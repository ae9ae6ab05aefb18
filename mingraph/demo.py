"""``mingraph demo``: the end-to-end example run by ``make demo`` on an embedded default."""

from __future__ import annotations

from pathlib import Path


def run_demo(out: str | Path, n_tiles: int = 4, size: int = 150, seed: int = 0) -> list[Path]:
    """Simulate a small dataset under ``out`` and render its tiles as PNGs; return written paths."""
    from .dataset import open_dataset
    from .ingest import simulate_dataset
    from .plots import save_tile_figure

    out = Path(out)
    ds_path = simulate_dataset(out / "dataset", n_tiles, size, seed, overwrite=True)
    ds = open_dataset(ds_path)
    written = [ds_path]
    for i in range(len(ds)):
        s = ds.sample(i)
        written.append(save_tile_figure(out / "tiles" / f"{s.name}.png", s.bse, s.labels, s.class_names, title=f"{s.name} ({s.meta['split']})"))
    return written
