"""What the physics classifier decides and returns: the status of a spectrum, the decision
thresholds (:class:`Settings`) and the per-spectrum results (:class:`PhysicsResult`).  The
classifier itself is :mod:`mingraph.spectra.physics`; the refits for real detectors are
:mod:`mingraph.spectra.refit`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

OK, NO_FIT, TOO_FEW, NOT_LISTED = 0, 1, 2, 3
STATUS = {
    OK: "ok",
    NO_FIT: "unknown: no mineral fits",
    TOO_FEW: "unknown: too few counts",
    NOT_LISTED: "unknown: fits a mineral not in the list",
}


@dataclass(frozen=True)
class Settings:
    """Decision thresholds of the classifier (dimensionless unless said)."""

    min_counts: float = 250.0  # counts in the fitted range below which nothing is claimed
    z_unknown: float = 4.0  # z of the best fit above which no class fits
    tolerance: float = 0.05  # relative model error τ tolerated (deviance τ² N)
    mix_deviance: float = 30.0  # deviance fall (in units of φ) that flags a mixture
    refine: str = "auto"  # refit spectra that fit no class with every element free: auto, always, never
    refine_dispersion: float = 1.2  # auto: refit when the median D / E(N) of the set exceeds this
    refine_min_counts: float = 800.0  # refit only spectra this full: below, noise hides model error
    refine_classes: int = 6  # classes tried per refitted spectrum
    refine_max_misfit: float = (
        0.0025  # refit only where (D - E(N)) / N per bin is below this (see refit.refine_unknown)
    )
    refine_pick: str = "composition"  # of the classes passing: the closest composition, or "likelihood"
    rel_tol: float = 0.35  # composition test: relative tolerance of a formula cation's share
    abs_tol: float = 0.03  # composition test: absolute tolerance of a formula cation's share
    foreign_tol: float = 0.03  # composition test: tolerance of a cation the formula lacks
    k_sigma: float = 2.0  # composition test: largest |Δ| / σ accepted
    blend_k_sigma: float = 0.75  # the same for a blend of two of the set's phases (see refit.unmix)
    blend_max_share: float = 0.8  # the largest majority share α of a blend (above: one phase)
    blends: bool = True  # where the physics reaches noise, name boundary blends of the set's phases
    chunk: int = 4096  # spectra per block (memory ~ chunk x candidates x 8 bytes)


@dataclass
class PhysicsResult:
    """Per-spectrum results (n spectra, C classes; column C of ``probabilities`` is unknown).

    ``label`` (n,) int64 class, or C for unknown; ``status`` (n,) int8 (``STATUS``);
    ``probabilities`` (n, C + 1) float32; ``second`` (n,) int64 the next most probable class;
    ``counts`` (n,) counts in the fitted range; ``deviance`` (n,) D per bin, ``noise_deviance``
    (n,) E(N) per bin, ``z`` (n,) goodness of fit; ``mixture`` (n,) bool, ``partner`` (n,) the
    other class of a mixture (-1 if none), ``fraction`` (n,) α; ``wt`` (n, n_elements) float32
    wt % of ``elements`` (symbols); ``composition`` (n, k) list of each spectrum's fitted mole
    fractions of its class's end members.
    """

    names: list[str]
    label: np.ndarray
    status: np.ndarray
    probabilities: np.ndarray
    second: np.ndarray
    counts: np.ndarray
    deviance: np.ndarray
    noise_deviance: np.ndarray
    z: np.ndarray
    mixture: np.ndarray
    partner: np.ndarray
    fraction: np.ndarray
    elements: list[str]
    wt: np.ndarray
    candidate: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    dispersion: float = 1.0  # median D / E(N) of the set: 1 where the physics fits to counting noise

    def label_names(self) -> list[str]:
        """The label of each spectrum as text: a class name, or the unknown status."""
        return [
            self.names[k] if k < len(self.names) else STATUS[int(s)] for k, s in zip(self.label, self.status)
        ]
