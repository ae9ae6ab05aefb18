"""onnxruntime for the ``onnx`` encoder (``onnx_encoder.py``): a checked session of the ONNX bytes
an encoder blob holds, and embeddings of raw counts by it.  onnxruntime is imported only when a
session is made (``pip install mingraph[onnx]``)."""

from __future__ import annotations

import os

import numpy as np

from mingraph.common.errors import InputError, import_extra
from mingraph.spectra.window import CH_HI, CH_LO, EMBED_DIM

INSTALL_HINT = "onnxruntime is not installed: pip install 'mingraph[onnx]'"


def _ort():
    return import_extra("onnxruntime", INSTALL_HINT)


def onnx_session(model: bytes, source: str | os.PathLike = "encoder", threads: int = 0):
    """An onnxruntime CPU session of ``model`` (ONNX bytes) checked to map (n, window) float32 to
    (n, 64) float32; InputError naming ``source`` otherwise.  ``threads`` 0 = onnxruntime's default."""
    ort = _ort()
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    try:
        sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise InputError(source, "onnx", f"not a loadable ONNX model ({type(e).__name__}: {e})") from None
    ins, outs = sess.get_inputs(), sess.get_outputs()
    want = CH_HI - CH_LO
    if len(ins) != 1 or len(ins[0].shape) != 2 or ins[0].shape[1] != want or ins[0].type != "tensor(float)":
        got = [(i.name, i.shape, i.type) for i in ins]
        raise InputError(source, "input", f"expected one float32 input of shape (n, {want}), got {got}")
    if len(outs) != 1 or len(outs[0].shape) != 2 or outs[0].shape[1] != EMBED_DIM:
        got = [(o.name, o.shape, o.type) for o in outs]
        raise InputError(source, "output", f"expected one output of shape (n, {EMBED_DIM}), got {got}")
    return sess


def onnx_embed(enc, spectra: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Embeddings (n, 64) float32 of raw count spectra (n, 3000) by an ``onnx`` encoder: channels
    ``CH_LO:CH_HI`` as float32, no normalisation, in batches of ``batch`` rows."""
    if enc._net is None:
        enc._net = onnx_session(enc.state["onnx"], enc.meta.get("source", "encoder"))
    sess = enc._net
    name = sess.get_inputs()[0].name
    x = np.ascontiguousarray(np.asarray(spectra)[:, CH_LO:CH_HI], dtype=np.float32)
    out = [sess.run(None, {name: x[i : i + batch]})[0] for i in range(0, x.shape[0], batch)]
    return np.concatenate(out).astype(np.float32, copy=False)
