"""Shard size: bytes per 150×150 graph at 1 % EDS with embeddings, against its explicit edge list.

Target (docs/method.md, "Compact form"): the compact form fits in 150 KB, where the explicit edge list
of the same graph takes megabytes.
"""

from __future__ import annotations

import numpy as np
from figures import record

from mingraph.acquire.dataset import open_dataset
from mingraph.acquire.importing import simulate_dataset
from mingraph.graphs.build import build_graphs
from mingraph.graphs.shards import open_shards
from mingraph.graphs.structure import edge_list
from mingraph.spectra.encoder import fit_pca, save_encoder


def test_shard_bytes_per_graph(benchmark, tmp_path):
    ds_path = simulate_dataset(tmp_path / "ds", 24, 150, seed=4, progress=False)
    ds = open_dataset(ds_path)
    s = ds.field(0)
    rr, cc = np.nonzero(s.valid)
    enc = save_encoder(fit_pca(s.eds.spectra(rr[::20], cc[::20])), tmp_path / "enc.pt")
    build_graphs(ds_path, tmp_path / "sh", fractions=[0.01], encoder=enc, progress=False)
    files = sorted((tmp_path / "sh").glob("*.arrow"))
    idx = open_shards(tmp_path / "sh")
    per_graph = sum(f.stat().st_size for f in files) / len(idx)
    # the explicit homogeneous edge list of the same graphs: int64 src/dst + float32 attribute
    explicit = np.mean([sum(a.nbytes for a in edge_list(idx.graph(k))) for k in range(4)])
    ratio = explicit / per_graph
    benchmark.extra_info.update(
        {"bytes_per_graph": per_graph, "explicit_edge_list_bytes": explicit, "ratio": ratio}
    )
    benchmark.pedantic(lambda: idx.graph(0), rounds=5, iterations=1)  # reading one graph back
    print(
        f"\nshard bytes per 150x150 graph at 1% EDS (with embeddings): {per_graph / 1e3:.1f} KB; explicit edge list {explicit / 1e6:.2f} MB; {ratio:.0f}x smaller"
    )
    record("shards.bytes_per_graph_150", per_graph, "B", ceiling=150_000)  # docs/method.md target
    # measured ~24x
    record(
        "shards.bytes_per_graph_150.vs_edge_list",
        per_graph,
        "B",
        peer="explicit edge list",
        peer_value=explicit,
        floor=15,
    )
