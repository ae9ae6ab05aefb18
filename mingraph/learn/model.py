"""The paper's GAT model (three GATConv layers) over a StructuredBatch, with three backends.

Architecture (docs/method.md, "The paper's model"): PyG ``GAT(65, 56, num_layers=2,
out_channels=56, heads=4, edge_dim=1, fill_value=0.0)`` followed by ``GAT(56, 56, num_layers=1,
out_channels=50, ...)``, i.e.

    layer 1: 65 → 4 heads × 14, concatenated → 56, ReLU
    layer 2: 56 → 4 heads × 56, averaged → 56 (closes the first PyG block: no activation)
    layer 3: 56 → 4 heads × 50, averaged → 50 logits

Node features are assembled as the paper does: ``[bse, 0×64]`` for pixels, ``[0, embedding]``
for EDS nodes.  Backends share one parameter set: ``dgl`` (DGL primitives, the reference),
``sparse`` (our CSR kernels on the explicit edge list), ``structured`` (fused kernels on the
compact graph; the fast one).  ``load_pyg_state_dict`` loads the authors' checkpoint layout.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from mingraph.graphs.conventions import topology_kwargs
from mingraph.graphs.structure import (
    StructuredBatch,
    assemble_node_features,
    batch_graphs,
    build_structured_graph,
    edge_list,
    size_groups,
)
from mingraph_kernels.gat_params import GATConvParams
from mingraph_kernels.gat_sparse import CsrEdges, build_csr, gat_conv_sparse
from mingraph_kernels.gat_structured import gat_conv_structured
from mingraph_kernels.structured_topology import StructuredTopology, build_structured_topology

BACKENDS = ("structured", "sparse", "dgl")


@dataclass
class GraphTensors:
    """A StructuredBatch as torch tensors on one device, ready for any backend.

    Built once per batch by :func:`to_tensors`; the explicit edge list (``sparse``, ``dgl``)
    is derived lazily and cached, the structured topology eagerly.
    """

    batch_size: int
    height: int
    width: int
    bse: Tensor  # (B, H, W)
    eds_feat: Tensor  # (N, D)
    topology: StructuredTopology
    labels: Tensor | None  # (B, H, W) int64, -1 = ignore
    eds_labels: Tensor | None  # (N,) int64
    source: StructuredBatch = field(repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def n_pixels(self) -> int:
        return self.batch_size * self.height * self.width

    @property
    def n_eds(self) -> int:
        return int(self.eds_feat.shape[0])

    @property
    def device(self) -> torch.device:
        return self.bse.device

    def edge_list(self, self_loops: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """Explicit (src, dst, attr) on the device; self-loops (attr 0) appended when asked."""
        key = ("edges", self_loops)
        if key not in self._cache:
            s, d, a = edge_list(self.source, self_loops=self_loops)
            dev, dt = self.device, self.bse.dtype
            self._cache[key] = (
                torch.from_numpy(s).to(dev),
                torch.from_numpy(d).to(dev),
                torch.from_numpy(a).to(dev, dt),
            )
        return self._cache[key]

    def csr(self) -> CsrEdges:
        """The explicit edge list with self-loops, sorted by destination (``sparse`` backend)."""
        if "csr" not in self._cache:
            s, d, a = self.edge_list(self_loops=True)
            self._cache["csr"] = build_csr(s, d, a, self.n_pixels + self.n_eds)
        return self._cache["csr"]

    def dgl_graph(self):
        """(DGL homogeneous graph with self-loops, its edge attributes) for the ``dgl`` backend."""
        if "dgl" not in self._cache:
            from mingraph_kernels.gat_dgl import make_dgl_graph

            s, d, a = self.edge_list(self_loops=True)
            self._cache["dgl"] = (make_dgl_graph(s, d, self.n_pixels + self.n_eds), a)
        return self._cache["dgl"]

    def node_features(self) -> Tensor:
        """(P + N, 1 + D) explicit node features: pixels [bse, 0…], EDS nodes [0, embedding]."""
        return assemble_node_features(self.bse, self.eds_feat)


def to_tensors(
    batch: StructuredBatch | GraphTensors,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> GraphTensors:
    """Convert a StructuredBatch (numpy) to :class:`GraphTensors` on ``device`` (once per batch)."""
    if isinstance(batch, GraphTensors):
        if batch.device == torch.device(device) and batch.bse.dtype == dtype:
            return batch
        batch = batch.source
    dev = torch.device(device)
    topo = build_structured_topology(
        batch.batch_size,
        batch.height,
        batch.width,
        batch.nearest_eds,
        batch.eds_rc,
        batch.eds_graph,
        batch.delaunay,
        batch.lift,
        dev,
        **topology_kwargs(batch),
    )
    feat = np.asarray(batch.eds_feat)
    if feat.ndim != 2:
        feat = feat.reshape(batch.n_eds, -1) if feat.size else np.zeros((batch.n_eds, 0), np.float32)
    return GraphTensors(
        batch.batch_size,
        batch.height,
        batch.width,
        torch.as_tensor(np.asarray(batch.bse)).to(dev, dtype),
        torch.as_tensor(feat).to(dev, dtype),
        topo,
        None if batch.labels is None else torch.as_tensor(batch.labels).to(dev, torch.int64),
        None if batch.eds_labels is None else torch.as_tensor(batch.eds_labels).to(dev, torch.int64),
        batch,
    )


class GATModel(torch.nn.Module):
    """The paper's 3-layer GAT (65 → 56 → 56 → 50 classes, 4 heads) with selectable backend."""

    arch = "paper"
    label = "GAT (paper)"
    min_margin = 32  # px: its 3 layers reach 3 pixels and 3 EDS hops (block_margin adds 4 spacings)
    mixes_point_classes = False

    def __init__(
        self,
        in_channels: int = 65,
        hidden_channels: int = 56,
        num_classes: int = 50,
        heads: int = 4,
        negative_slope: float = 0.2,
    ):
        super().__init__()
        if hidden_channels % heads:
            raise ValueError(f"hidden_channels ({hidden_channels}) must be divisible by heads ({heads})")
        self.in_channels = int(in_channels)
        self.hidden_channels = int(hidden_channels)
        self.num_classes = int(num_classes)
        self.heads = int(heads)
        self.eds_dim = self.in_channels - 1
        self.convs = torch.nn.ModuleList(
            [
                GATConvParams(
                    in_channels, hidden_channels // heads, heads, concat=True, negative_slope=negative_slope
                ),
                GATConvParams(
                    hidden_channels, hidden_channels, heads, concat=False, negative_slope=negative_slope
                ),
                GATConvParams(
                    hidden_channels, num_classes, heads, concat=False, negative_slope=negative_slope
                ),
            ]
        )

    # the phase-model interface (mingraph.learn.registry.PhaseModel)

    def point_features(self, encoder, spectra: np.ndarray) -> np.ndarray:
        """The encoder's (n, 64) embeddings of (n, 3000) count spectra; for a model trained on
        physics shards, the physics classifier's (n, C + 1) class probabilities
        (:class:`mingraph.learn.bundle.PhysicsPoints`)."""
        return encoder.embed(spectra)

    @torch.no_grad()
    def point_classes(self, encoder, features: np.ndarray) -> np.ndarray:
        """(n,) int64: the encoder's classifier head on the embeddings; with the physics, the
        model class of each point's most probable column (the recorded ``label_columns``), -1
        for unknown and for a mineral the model has no class of."""
        columns = getattr(encoder, "columns", None)
        if getattr(encoder, "kind", None) == "physics" and columns is not None:
            f = np.asarray(features)
            if len(f) == 0:
                return np.zeros(0, np.int64)
            return np.asarray(columns, np.int64)[f.argmax(1)]
        head = encoder.network().head
        return (
            head(torch.as_tensor(np.asarray(features), dtype=torch.float32))
            .argmax(1)
            .numpy()
            .astype(np.int64)
        )

    def field_context(self, bse: np.ndarray, valid: np.ndarray, eds_rc: np.ndarray | None = None) -> None:
        """No whole-field statistics: each block's graph stands alone."""
        return None

    @torch.no_grad()
    def block_probabilities(self, bse, valid, rc, features, context, settings: dict) -> Tensor:
        """(h, w, classes) softmax of the pixel logits of one block's structured graph, built
        with the model file's graph settings (lift, EDS edges, k, convention, backend)."""
        g = build_structured_graph(
            bse,
            rc,
            features,
            lift=settings.get("lift", 1.0),
            eds_edges=settings.get("eds_edges", "delaunay"),
            k=settings.get("k", 6),
            convention=settings.get("convention", "paper"),
        )
        pix, _ = self(batch_graphs([g]), backend=settings.get("backend", "structured"))
        return torch.softmax(pix[0], -1)

    def field_maps(self, encoder, settings: dict, fields: list, graphs: list, spectra: list) -> list:
        """Class maps of evaluation fields: each graph gets this model's encoder's embeddings of
        the same measured spectra, and graphs of equal size run batched."""
        graphs = [
            dataclasses.replace(g, eds_feat=self.point_features(encoder, sp)) if g.n_eds else g
            for g, sp in zip(graphs, spectra)
        ]
        return [p[0] for p in self.graph_maps(graphs, settings)]

    @torch.no_grad()
    def graph_maps(
        self, graphs: list, settings: dict, batch: int = 16
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(class map, max softmax probability) of each structured graph, batching equal sizes."""
        out: list = [None] * len(graphs)
        backend = settings.get("backend", "structured")
        device = next(self.parameters()).device
        for ids in size_groups(graphs):
            for k in range(0, len(ids), batch):
                chunk = ids[k : k + batch]
                pix, _ = self(batch_graphs([graphs[i] for i in chunk]), backend=backend)
                conf, cls = torch.softmax(pix.to(device), -1).max(-1)
                for j, i in enumerate(chunk):
                    out[i] = (cls[j].cpu().numpy(), conf[j].cpu().numpy())
        return out

    @property
    def config(self) -> dict:
        """Constructor arguments (to save next to a checkpoint)."""
        return dict(
            in_channels=self.in_channels,
            hidden_channels=self.hidden_channels,
            num_classes=self.num_classes,
            heads=self.heads,
            negative_slope=self.convs[0].negative_slope,
        )

    def forward(
        self, batch: StructuredBatch | GraphTensors, backend: str = "structured"
    ) -> tuple[Tensor, Tensor]:
        """(pixel_logits (B, H, W, classes), eds_logits (N, classes)) for a batch."""
        p = next(self.parameters())
        g = to_tensors(batch, p.device, p.dtype)
        if g.n_eds == 0 and g.eds_feat.shape[1] != self.eds_dim:  # BSE-only batch: feature width unknown
            g.eds_feat = g.eds_feat.new_zeros((0, self.eds_dim))
        if g.eds_feat.shape[1] != self.eds_dim:
            raise ValueError(
                f"EDS features have {g.eds_feat.shape[1]} values, the model expects {self.eds_dim}"
            )
        if backend == "structured":
            out = self._forward_structured(g)
        elif backend == "sparse":
            out = self._forward_sparse(g)
        elif backend == "dgl":
            out = self._forward_dgl(g)
        else:
            raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
        n_pix = g.n_pixels
        return out[:n_pix].view(g.batch_size, g.height, g.width, -1), out[n_pix:]

    def _layers(self, x: Tensor, layer):
        x = torch.relu(layer(self.convs[0], x))
        x = layer(self.convs[1], x)
        return layer(self.convs[2], x)

    def _forward_structured(self, g: GraphTensors) -> Tensor:
        topo = g.topology
        conv = self.convs[0]
        # layer 1 from the non-zero input columns only: bse for pixels, the embedding for EDS
        zp, sp, dp = conv.project(g.bse.reshape(-1, 1), first_col=0)
        ze, se, de = conv.project(g.eds_feat, first_col=1)
        proj = (torch.cat([zp, ze]), torch.cat([sp, se]), torch.cat([dp, de]))
        del zp, ze, sp, se, dp, de
        x = torch.relu_(gat_conv_structured(conv, None, topo, projected=proj))
        for conv in self.convs[1:]:
            # drop each input as soon as it is projected (inference then holds one layer's z)
            proj = conv.project(x)
            del x
            x = gat_conv_structured(conv, None, topo, projected=proj)
            del proj
        return x

    def _forward_sparse(self, g: GraphTensors) -> Tensor:
        csr = g.csr()
        return self._layers(g.node_features(), lambda conv, x: gat_conv_sparse(conv, x, csr))

    def _forward_dgl(self, g: GraphTensors) -> Tensor:
        from mingraph_kernels.gat_dgl import gat_conv_dgl

        graph, attr = g.dgl_graph()
        return self._layers(g.node_features(), lambda conv, x: gat_conv_dgl(conv, graph, x, attr))


# PyG's two-block layout: torch.nn.Sequential(GAT(...2 layers), GAT(...1 layer)) → our convs
_PYG_BLOCKS = {("0", "0"): 0, ("0", "1"): 1, ("1", "0"): 2}
_PYG_PARAMS = ("lin.weight", "lin_edge.weight", "att_src", "att_dst", "att_edge", "bias")


def load_pyg_state_dict(model: GATModel, state_dict: Mapping[str, Tensor]) -> GATModel:
    """Load a PyG checkpoint laid out as ``Sequential(GAT(2 layers), GAT(1 layer))`` (keys
    ``{block}.convs.{i}.{param}``, optionally prefixed, e.g. ``module.``) into ``model``.

    Raises ``KeyError``/``ValueError`` on missing, unexpected or mis-shaped parameters.
    """
    mapped: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        try:
            at = parts.index("convs")
        except ValueError:
            raise KeyError(f"unexpected key {key!r} in a PyG GAT state dict") from None
        block, layer, name = parts[at - 1] if at else None, parts[at + 1], ".".join(parts[at + 2 :])
        if (block, layer) not in _PYG_BLOCKS or name not in _PYG_PARAMS:
            raise KeyError(
                f"unexpected key {key!r}: expected {{0.convs.0, 0.convs.1, 1.convs.0}}.{{{', '.join(_PYG_PARAMS)}}}"
            )
        mapped[f"convs.{_PYG_BLOCKS[(block, layer)]}.{name}"] = value
    own = model.state_dict()
    missing = sorted(set(own) - set(mapped))
    if missing:
        raise KeyError(f"PyG state dict lacks {missing}")
    for k, v in mapped.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(
                f"{k}: shape {tuple(v.shape)} in the checkpoint, {tuple(own[k].shape)} in the model"
            )
    model.load_state_dict(mapped)
    return model


def pyg_state_dict(model: GATModel) -> dict[str, Tensor]:
    """Our parameters in the authors' PyG layout (inverse of :func:`load_pyg_state_dict`)."""
    names = {v: f"{b}.convs.{i}" for (b, i), v in _PYG_BLOCKS.items()}
    return {f"{names[int(k.split('.')[1])]}.{k.split('.', 2)[2]}": v for k, v in model.state_dict().items()}


__all__ = ["GATModel", "GraphTensors", "to_tensors", "load_pyg_state_dict", "pyg_state_dict", "BACKENDS"]
