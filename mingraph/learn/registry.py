"""The model registry: a model file's ``arch`` names its class, and the class does the rest.

Every phase model implements one interface (:class:`PhaseModel`): the point features it takes
from spectra, its context margin, whole-field context, the class probabilities of one block,
and its file round trip (``config`` and the class's constructor).  Nothing outside this module
asks which architecture a model is; a new model registers its class in :data:`MODELS`.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from mingraph.learn.fusion_model import FusionModel
from mingraph.learn.model import GATModel


class PhaseModel(Protocol):
    """What predict, evaluate and acquisition need of a model.

    Attributes
    ----------
    arch : str
        The key of the model file's ``model_config["arch"]``.
    label : str
        The name its scores carry in tables ("fusion model", "GAT (paper)").
    min_margin : int
        The least overlap (px) of the blocks a large field is cut into.
    eds_dim : int
        Values per EDS point it takes.
    mixes_point_classes : bool
        Its answer is a mixture of its points' class probabilities (so it can take any
        classifier's probabilities and any class list).
    config : dict
        Constructor arguments, saved in the model file.
    """

    arch: str
    label: str
    min_margin: int
    eds_dim: int
    mixes_point_classes: bool
    config: dict

    def point_features(self, encoder: Any, spectra: np.ndarray) -> np.ndarray:
        """(n, eds_dim) float32 features of (n, 3000) count spectra."""

    def point_classes(self, encoder: Any, features: np.ndarray) -> np.ndarray:
        """(n,) int64 class of each point from its features (what nearest-EDS uses)."""

    def field_context(self, bse: np.ndarray, valid: np.ndarray, eds_rc: np.ndarray | None = None) -> Any:
        """Whole-field statistics every block of the field shares (None when there are none),
        from its BSE, specimen mask and (N, 2) EDS points."""

    def block_probabilities(
        self,
        bse: np.ndarray,
        valid: np.ndarray,
        rc: np.ndarray,
        features: np.ndarray,
        context: Any,
        settings: dict,
    ) -> torch.Tensor | None:
        """(h, w, classes) class probabilities of one block window; None when it cannot say."""

    def field_maps(self, encoder: Any, settings: dict, fields: list, graphs: list, spectra: list) -> list:
        """(H, W) class maps of whole fields on given points (evaluation; ``graphs[i].eds_rc``)."""


MODELS: dict[str, type] = {GATModel.arch: GATModel, FusionModel.arch: FusionModel}
"""``arch`` -> model class."""


def model_class(arch: str) -> type:
    """The class registered for ``arch``.

    Raises
    ------
    ValueError
        For an architecture no class is registered for.

    Examples
    --------
    >>> model_class("fusion").__name__
    'FusionModel'
    """
    try:
        return MODELS[arch]
    except KeyError:
        raise ValueError(f"unknown model architecture {arch!r}; expected one of {sorted(MODELS)}") from None


def build_model(config: dict) -> torch.nn.Module:
    """The model a file's ``model_config`` describes (``arch`` defaults to "paper", the files
    written before the key existed).

    Examples
    --------
    >>> build_model({"arch": "fusion", "num_classes": 5}).num_classes
    5
    """
    cfg = dict(config)
    return model_class(cfg.pop("arch", "paper"))(**cfg)
