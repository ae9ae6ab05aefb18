"""``mingraph demo``: the end-to-end example run by ``make demo``, on embedded defaults only.

Simulates a field, measures EDS at 1 % of its pixels, predicts the phase map with the shipped
model and writes every output (phase map, overlay, confidence, mineralogy, report) plus a
summary with F1 against the simulated truth; also renders a few example tiles.
"""

from __future__ import annotations

from pathlib import Path

from mingraph.common.outputs import output_folder


def run_demo(
    out: str | Path,
    n_tiles: int = 4,
    size: int = 150,
    seed: int = 0,
    field: int = 512,
    fraction: float = 0.01,
    model: str | Path | None = None,
    progress: bool = True,
) -> list[Path]:
    """Write the demo under ``out``; returns the main paths written."""
    from mingraph.acquire.dataset import open_dataset
    from mingraph.acquire.importing import simulate_dataset
    from mingraph.acquire.simulate import simulate_tile
    from mingraph.analyse.plots import save_tile_figure
    from mingraph.learn.bundle import load_model
    from mingraph.workflows.predict import library_densities, measure_points, run_predict

    out = output_folder(out, "demo")
    ds_path = simulate_dataset(out / "dataset", n_tiles, size, seed, overwrite=True, progress=progress)
    ds = open_dataset(ds_path)
    written = [ds_path]
    for i in range(len(ds)):
        s = ds.field(i)
        written.append(
            save_tile_figure(
                out / "tiles" / f"{s.name}.png",
                s.bse,
                s.labels,
                s.class_names,
                title=f"{s.name} ({s.meta['split']})",
            )
        )
    bundle = load_model(model)
    sample = simulate_tile(seed + 1000, field).field(f"demo-field-{field}")
    rc, emb = measure_points(sample, bundle, fraction, "random", seed)
    summary = {
        "input": f"simulated {field}x{field} field (seed {seed + 1000})",
        "model": str(model or "shipped default"),
    }
    res = run_predict(
        out / "prediction",
        sample,
        bundle,
        rc,
        emb,
        summary,
        overwrite=True,
        densities=library_densities(bundle.class_names),
        progress=progress,
    )
    written += [res["out"], res["report"]]
    if res["metrics"]:
        m = res["metrics"]
        print(
            f"demo field: F1 (support-weighted) {m['f1_weighted']:.3f}, macro {m['f1_macro']:.3f}, accuracy {m['accuracy']:.3f} at {100 * fraction:g} % EDS"
        )
    return written
