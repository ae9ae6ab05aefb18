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

from mingraph.common.errors import InputError
from mingraph.spectra.encoder import Encoder
from mingraph.spectra.onnx_runtime import INSTALL_HINT, onnx_embed, onnx_session
from mingraph.spectra.window import CH_HI, CH_LO


def onnx_encoder(path: str | os.PathLike):
    """An :class:`~mingraph.spectra.encoder.Encoder` of kind ``onnx`` from an ONNX file.

    Raises InputError when the file is missing, onnxruntime is absent, or the network does not
    map (n, 1536) float32 to (n, 64).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "encoder", "file not found")
    model = path.read_bytes()
    onnx_session(model, path)  # refuse a wrong network now, not at the first prediction
    meta = {"source": path.name, "window": [CH_LO, CH_HI], "input": "raw counts, float32"}
    return Encoder("onnx", {"onnx": model}, meta=meta)


__all__ = ["onnx_encoder", "onnx_embed", "onnx_session", "INSTALL_HINT"]
