"""Spectral encoder of kind ``onnx``: a network shipped as an ONNX file, run by onnxruntime.

Made for the encoder of Juránek et al. 2022 that the paper's authors released
(``eds_emb_model.onnx``, MIT): float32 raw counts of channels 20–1555 (0.2–15.56 keV, 10 eV
each), one row per spectrum, in; 64 values per spectrum out.  That network standardises the
counts itself and L2-normalises its output, so mingraph's count normalisation
(``encoder.normalise_counts``) is *not* applied: the window is sliced from the raw counts as the
authors' example notebook does (``spectra[:, 20:1556].astype(float32)``).

onnxruntime is an optional dependency (``pip install mingraph[onnx]``); the ONNX file's bytes are
stored in the encoder blob, so a model file carries its encoder whole.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mingraph.errors import InputError

INSTALL_HINT = "onnxruntime is not installed: pip install 'mingraph[onnx]'"


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise InputError("onnxruntime", "import", INSTALL_HINT) from None
    return onnxruntime


def onnx_session(model: bytes, source: str | os.PathLike = "encoder", threads: int = 0):
    """An onnxruntime CPU session of ``model`` (ONNX bytes) checked to map (n, window) float32 to
    (n, 64) float32; InputError naming ``source`` otherwise.  ``threads`` 0 = onnxruntime's default."""
    from mingraph.spectra.encoder import CH_HI, CH_LO, EMBED_DIM

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


def onnx_encoder(path: str | os.PathLike):
    """An :class:`~mingraph.spectra.encoder.Encoder` of kind ``onnx`` from an ONNX file.

    Raises InputError when the file is missing, onnxruntime is absent, or the network does not
    map (n, 1536) float32 to (n, 64).
    """
    from mingraph.spectra.encoder import CH_HI, CH_LO, Encoder

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "encoder", "file not found")
    model = path.read_bytes()
    onnx_session(model, path)  # refuse a wrong network now, not at the first prediction
    meta = {"source": path.name, "window": [CH_LO, CH_HI], "input": "raw counts, float32"}
    return Encoder("onnx", {"onnx": model}, meta=meta)


def onnx_embed(enc, spectra: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Embeddings (n, 64) float32 of raw count spectra (n, 3000) by an ``onnx`` encoder: channels
    ``CH_LO:CH_HI`` as float32, no normalisation, in batches of ``batch`` rows."""
    from mingraph.spectra.encoder import CH_HI, CH_LO

    if enc._net is None:
        enc._net = onnx_session(enc.state["onnx"], enc.meta.get("source", "encoder"))
    sess = enc._net
    name = sess.get_inputs()[0].name
    x = np.ascontiguousarray(np.asarray(spectra)[:, CH_LO:CH_HI], dtype=np.float32)
    out = [sess.run(None, {name: x[i : i + batch]})[0] for i in range(0, x.shape[0], batch)]
    return np.concatenate(out).astype(np.float32, copy=False)


__all__ = ["onnx_encoder", "onnx_embed", "onnx_session", "INSTALL_HINT"]
