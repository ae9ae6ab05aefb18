"""``mingraph convert-model``: turn another project's released model into a mingraph model file.

``--from authors``: the paper's authors' PyTorch Lightning checkpoint (``model.ckpt`` of
github.com/Unexp1ainable/GNN_mineral_segmentation, MIT) and their ONNX spectral encoder
(``eds_emb_model.onnx``).  The checkpoint's ``state_dict`` holds two PyG ``GAT`` blocks,
``features.convs.{0,1}.*`` and ``classification.convs.0.*``: exactly :class:`GATModel`'s three
layers (docs/method.md, "The paper's model").  The model file records the ``authors`` graph
convention and EDS height 5 (``graphs.conventions``), the graph the checkpoint was trained on, so
``predict``, ``evaluate`` and the API build that graph without options.  Their 50 class ids are
TESCAN TIMA phase ids of a private dataset: the classes are named ``authors-0`` … ``authors-49``.
"""

from __future__ import annotations

import os
from pathlib import Path

from mingraph.common.errors import InputError
from mingraph.common.files import save_artifact
from mingraph.graphs.conventions import CONVENTIONS
from mingraph.learn.bundle import make_bundle
from mingraph.learn.model import GATModel, load_pyg_state_dict

SOURCES = ("authors",)
# hyper-parameters of the authors' checkpoint that GATModel reproduces (docs/method.md)
AUTHORS_HPARAMS = {
    "in_channels": 65,
    "hidden_channels": 56,
    "num_layers": 3,
    "edge_dim": 1,
    "heads": 4,
    "fill_value": 0.0,
}
_BLOCKS = {"features": "0", "classification": "1"}  # their block names -> PyG Sequential indices


def read_authors_checkpoint(path: str | os.PathLike) -> tuple[GATModel, dict]:
    """(GATModel with the checkpoint's weights, its hyper-parameters) from the authors' Lightning
    checkpoint; InputError naming the file and field for anything else."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint", "file not found")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise InputError(
            path, "checkpoint", f"not a readable PyTorch checkpoint ({type(e).__name__})"
        ) from None
    if not isinstance(ck, dict) or "state_dict" not in ck or "hyper_parameters" not in ck:
        raise InputError(
            path, "checkpoint", "expected a Lightning checkpoint with state_dict and hyper_parameters"
        )
    hp = dict(ck["hyper_parameters"])
    for k, v in AUTHORS_HPARAMS.items():
        if hp.get(k) != v:
            raise InputError(
                path, f"hyper_parameters.{k}", f"expected {v!r} (the paper's GAT), got {hp.get(k)!r}"
            )
    n_classes = hp.get("out_channels")
    if not isinstance(n_classes, int) or n_classes < 1:
        raise InputError(path, "hyper_parameters.out_channels", f"expected a class count, got {n_classes!r}")
    state = {}
    for key, value in ck["state_dict"].items():
        block, _, rest = key.partition(".")
        if block not in _BLOCKS:
            raise InputError(path, f"state_dict.{key}", "expected keys under features. or classification.")
        state[f"{_BLOCKS[block]}.{rest}"] = value
    model = GATModel(65, 56, n_classes, 4)
    try:
        load_pyg_state_dict(model, state)
    except (KeyError, ValueError) as e:
        raise InputError(path, "state_dict", str(e).strip("'\"")) from None
    return model.eval(), hp


def convert_authors(ckpt: str | os.PathLike, encoder: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write a mingraph model file from the authors' checkpoint and ONNX encoder (atomically)."""
    from mingraph.spectra.onnx_encoder import onnx_encoder

    model, hp = read_authors_checkpoint(ckpt)
    enc = onnx_encoder(encoder)
    conv = CONVENTIONS["authors"]
    cfg = {
        "convention": conv.name,
        "lift": conv.lift,
        "eds_edges": "delaunay",
        "backend": "structured",
        "hidden_channels": 56,
        "heads": 4,
        "source": {"checkpoint": Path(ckpt).name, "encoder": Path(encoder).name},
    }
    meta = {
        "converted_from": "authors",
        "origin": "github.com/Unexp1ainable/GNN_mineral_segmentation (MIT)",
        "hyper_parameters": {k: hp[k] for k in sorted(hp) if isinstance(hp[k], (int, float, str))},
        "bse": "grey levels / 65535 (uint16), as mingraph reads BSE images",
    }
    names = [f"authors-{i}" for i in range(model.num_classes)]
    return save_artifact(make_bundle(model, enc, names, cfg, meta), out)


def convert_model(source: str, ckpt, encoder, out) -> Path:
    """Dispatch on ``--from``; InputError for an unknown source."""
    if source not in SOURCES:
        raise InputError("--from", "source", f"expected one of {SOURCES}, got {source!r}")
    if encoder is None:
        raise InputError(
            "--encoder", "encoder", "the authors' model needs their ONNX encoder (--encoder FILE)"
        )
    return convert_authors(ckpt, encoder, out)


__all__ = ["convert_model", "convert_authors", "read_authors_checkpoint", "SOURCES"]
