"""Scoring a model against labels whose classes are named differently: match classes by name.

A model knows its classes by name (its bundle), a dataset or a label image by its own list.
Labels are translated into the model's ids by name; a labelled class the model does not know is
left out of the scores (its pixels count as unlabelled) and listed, never silently dropped; a
model class that the labels never use stays in the scores (predicting it is simply wrong).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mingraph.common.errors import InputError


@dataclass
class ClassMatch:
    """How label ids map onto a model's ids, and what did not match."""

    lut: np.ndarray  # (n_label_classes,) model id of each label id, -1 when the model lacks it
    labels_only: list[str]  # label classes the model does not know: left out of the scores
    model_only: list[str]  # model classes the labels never name

    @property
    def identical(self) -> bool:
        return (
            not self.labels_only
            and not self.model_only
            and bool(np.all(self.lut == np.arange(self.lut.size)))
        )

    def to_model(self, labels: np.ndarray) -> np.ndarray:
        """Label ids (-1 = unknown) -> model ids, -1 where unknown or unmatched."""
        a = np.asarray(labels)
        if self.lut.size == 0:
            return np.full(a.shape, -1, np.int64)
        return np.where(a >= 0, self.lut[np.clip(a, 0, self.lut.size - 1)], -1)

    def lines(self) -> list[str]:
        """What the user is told: one line per kind of mismatch."""
        out = []
        if self.labels_only:
            out.append(
                f"classes in the labels but not in the model, left out of the scores: {self.labels_only}"
            )
        if self.model_only:  # a 191-mineral library against a 50-class truth: name a few, count all
            few = ", ".join(self.model_only[:SHOWN])
            more = f" and {len(self.model_only) - SHOWN} more" if len(self.model_only) > SHOWN else ""
            out.append(f"{len(self.model_only)} classes of the model that the labels never name: {few}{more}")
        return out


SHOWN = 8
"""Classes named in the line about a model's classes the labels never name (the rest counted)."""


def match_classes(model_names: list[str], label_names: list[str], source: object) -> ClassMatch:
    """Match label classes to a model's by exact name; InputError when no name is shared."""
    index = {n: i for i, n in enumerate(model_names)}
    lut = np.array([index.get(n, -1) for n in label_names], np.int64)
    if label_names and (lut < 0).all():
        raise InputError(
            source,
            "class_names",
            f"no class name is shared with the model's ({model_names[:4]}...): give the labels' names "
            "(--classes) as the model names them",
        )
    labels_only = [n for n in label_names if n not in index]
    model_only = [n for n in model_names if n not in set(label_names)]
    return ClassMatch(lut, labels_only, model_only)
