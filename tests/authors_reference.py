"""The paper's authors' pipeline, as an independent reference for mingraph's ``authors`` convention.

Re-written from reading their released ``graph_fusion_eds.py`` and example notebook
(github.com/Unexp1ainable/GNN_mineral_segmentation, MIT): explicit edge lists built as their
builder lists them (each direction of the grid, Delaunay neighbours from
``vertex_neighbor_vertices``, KD-tree queries EDS -> pixel and pixel -> EDS, scikit-learn's
``kneighbors_graph(…, 2)`` when qhull fails), merged by PyG's ``to_undirected`` (``reduce="add"``);
the two PyG ``GAT`` blocks of their Lightning checkpoint; the ONNX encoder run by onnxruntime on
``spectra[:, 20:1556]``.  Nothing here imports mingraph's graph code.
"""

from __future__ import annotations

import numpy as np
import torch

EDS_HEIGHT = 5.0
QHULL = "Qbb Qc Qz Q12"


def authors_edges(height: int, width: int, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(edge_index (2, E) int64, edge_attr (E, 1) float32) of the authors' graph; EDS node t is
    the t-th True pixel of ``mask`` in row-major order, numbered H*W + t."""
    from scipy.spatial import Delaunay, KDTree
    from torch_geometric.utils import to_undirected

    hw = height * width
    ey, ex = np.nonzero(mask)
    eds = np.stack([ex, ey, np.full(ex.size, EDS_HEIGHT)], 1).astype(np.float64)
    yy, xx = np.mgrid[0:height, 0:width]
    pix = np.stack([xx.ravel(), yy.ravel(), np.zeros(hw)], 1).astype(np.float64)
    src, dst, att = [], [], []
    # grid: every pixel lists each of its 8 neighbours
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == dx == 0:
                continue
            ok = (yy + dy >= 0) & (yy + dy < height) & (xx + dx >= 0) & (xx + dx < width)
            p = (yy * width + xx)[ok]
            src.append(p)
            dst.append(p + dy * width + dx)
            att.append(np.full(p.size, np.sqrt(2.0) if dy and dx else 1.0))
    # EDS-EDS
    try:
        ptr, nb = Delaunay(eds[:, :2], qhull_options=QHULL).vertex_neighbor_vertices
        i = np.repeat(np.arange(ex.size), np.diff(ptr))
        src.append(hw + i)
        dst.append(hw + nb)
        att.append(np.linalg.norm(eds[i] - eds[nb], axis=1))
    except Exception:
        from sklearn.neighbors import kneighbors_graph

        g = kneighbors_graph(eds, 2, mode="distance")
        r, c = g.nonzero()
        src.append(hw + r)
        dst.append(hw + c)
        att.append(np.asarray(g[r, c]).ravel())
    # EDS -> nearest pixel (the one under it) and pixel -> nearest EDS node
    d, k = KDTree(pix).query(eds)
    src.append(np.atleast_1d(k))
    dst.append(hw + np.arange(ex.size))
    att.append(np.atleast_1d(d))
    d, k = KDTree(eds).query(pix)
    src.append(np.arange(hw))
    dst.append(hw + k)
    att.append(d)
    ei = torch.tensor(np.stack([np.concatenate(src), np.concatenate(dst)]), dtype=torch.long)
    ea = torch.tensor(np.concatenate(att), dtype=torch.float32)
    ei, ea = to_undirected(ei, ea)
    return ei, ea.reshape(-1, 1)


def authors_gat(ckpt_path) -> torch.nn.Sequential:
    """Their two PyG GAT blocks with the checkpoint's weights (as their ``GATmodel`` builds them)."""
    from torch_geometric.nn import GAT

    ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    hp = ck["hyper_parameters"]
    kw = dict(heads=hp["heads"], edge_dim=hp["edge_dim"], fill_value=hp["fill_value"])
    hid = hp["hidden_channels"]
    seq = torch.nn.Sequential(
        GAT(hp["in_channels"], hid, hp["num_layers"] - 1, hid, concat=True, **kw),
        GAT(hid, hid, 1, hp["out_channels"], concat=False, **kw),
    )
    sd = {
        k.replace("features.", "0.", 1).replace("classification.", "1.", 1): v
        for k, v in ck["state_dict"].items()
    }
    seq.load_state_dict(sd)
    return seq.eval()


@torch.no_grad()
def authors_logits(seq, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
    for block in seq:
        x = block(x, edge_index, edge_attr=edge_attr)
    return x


def authors_embed(onnx_path, spectra: np.ndarray) -> np.ndarray:
    """onnxruntime on ``spectra[:, 20:1556]`` as float32, as their notebook does."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = np.asarray(spectra)[:, 20:1556].astype(np.float32)
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def authors_predict(ckpt_path, onnx_path, bse: np.ndarray, rc: np.ndarray, spectra: np.ndarray) -> np.ndarray:
    """(H, W) class ids of the authors' pipeline: BSE in [0, 1], EDS points ``rc`` (n, 2) with
    their raw spectra (n, 3000) in any order (their builder takes them in mask order)."""
    h, w = bse.shape
    mask = np.zeros((h, w), bool)
    mask[rc[:, 0], rc[:, 1]] = True
    order = np.lexsort((rc[:, 1], rc[:, 0]))
    emb = authors_embed(onnx_path, spectra[order])
    x = np.zeros((h * w + len(order), 65), np.float32)
    x[: h * w, 0] = bse.reshape(-1)
    x[h * w :, 1:] = emb
    ei, ea = authors_edges(h, w, mask)
    out = authors_logits(authors_gat(ckpt_path), torch.from_numpy(x), ei, ea)
    return out[: h * w].argmax(1).reshape(h, w).numpy()
