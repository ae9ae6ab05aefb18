"""The model file: one self-contained artifact (GAT weights and architecture, the spectral
encoder, class names and graph settings) written by ``train`` as ``best.pt``/``last.pt``, shipped
as the default model, and read by ``evaluate``, ``predict`` and the API.

Format: a torch-saved dict with ``format == "mingraph-model"`` and ``version``; keys
``model_config``, ``model_state``, ``encoder`` (an encoder blob), ``class_names``, ``config``,
``meta``.  Read through :func:`mingraph.common.files.load_artifact`, which checks format and version.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mingraph.common.errors import InputError
from mingraph.common.files import load_artifact, save_artifact
from mingraph.learn.model import GATModel
from mingraph.learn.registry import build_model
from mingraph.spectra.encoder import encoder_blob

BUNDLE_FORMAT = "mingraph-model"
BUNDLE_VERSION = 1


@dataclass
class Bundle:
    """A trained model as used by evaluate/predict: GAT, encoder, classes and graph settings."""

    model: torch.nn.Module  # a PhaseModel (mingraph.learn.registry): GATModel or FusionModel
    encoder: object
    class_names: list[str]
    config: dict
    meta: dict
    path: str | None = None  # the model file it was read from (None: built in memory)

    @property
    def arch(self) -> str:
        """The model's registered architecture (:data:`mingraph.learn.registry.MODELS`)."""
        return self.model.arch


def default_model_path() -> Path:
    """The model shipped in the package: the fusion model, trained on the simulator (README,
    docs/results.md)."""
    return Path(__file__).resolve().parents[1] / "data" / "default_model.pt"


def load_bundle(path: str | os.PathLike, device: str | torch.device = "cpu") -> Bundle:
    """Read a checkpoint or shipped model, checking its format."""
    from mingraph.spectra.encoder import encoder_from_blob

    obj = load_artifact(path, BUNDLE_FORMAT, BUNDLE_VERSION, "model")
    model = build_model(obj["model_config"])
    model.load_state_dict(obj["model_state"])
    model.to(device).eval()
    meta = dict(obj.get("meta", {}))
    if "temperature" in meta and hasattr(model, "temperature"):  # a calibrated copy (meta, never the weights)
        t = float(meta["temperature"])
        if not t > 0:
            raise InputError(path, "meta.temperature", f"expected a temperature > 0, got {t}")
        model.temperature = t
    if meta.get("platt") is not None and hasattr(model, "platt"):
        a, b = (float(meta["platt"][k]) for k in ("a", "b"))
        if not a > 0:
            raise InputError(path, "meta.platt", f"expected a > 0 (an increasing map), got {a}")
        model.platt = (a, b)
    encoder = None if obj.get("encoder") is None else encoder_from_blob(obj["encoder"])
    return Bundle(
        model, encoder, list(obj["class_names"]), dict(obj["config"]), dict(obj.get("meta", {})), str(path)
    )


def resolve_model(run_or_file: str | os.PathLike) -> Path:
    """A training run folder's ``best.pt`` (else its ``last.pt``), or the model file itself.

    Raises
    ------
    InputError
        A folder holding neither ``best.pt`` nor ``last.pt``.

    Examples
    --------
    >>> resolve_model("model.pt").name
    'model.pt'
    """
    p = Path(run_or_file)
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            if (p / name).is_file():
                return p / name
        raise InputError(p, "run", "no best.pt or last.pt in this run folder")
    return p


def load_model(path: str | os.PathLike | Bundle | None = None, *, device: str = "cpu") -> Bundle:
    """A model file (or a training run's folder); the shipped fusion model when ``path`` is None.

    Parameters
    ----------
    path : path-like, Bundle or None
        A ``.pt`` model file, a run folder (its ``best.pt``), an already loaded model, or None.
    device : str
        ``cpu``, ``cuda`` or ``cuda:N``.

    Returns
    -------
    Bundle
        The model, its spectral encoder and class names (``bundle.class_names``).

    Raises
    ------
    InputError
        No such file, not a mingraph model file, or no default model installed.

    Examples
    --------
    >>> len(load_model().class_names)
    50
    """
    if isinstance(path, Bundle):
        return path
    if path is None:
        p = default_model_path()
        if not p.is_file():
            raise InputError(p, "model", "no default model is installed; pass --model FILE")
        return load_bundle(p, device)
    return load_bundle(resolve_model(path), device)


def point_record(bundle: Bundle, classifier: str) -> dict:
    """What a prediction's summary records of its point classifier: its name and, for the
    physics, the mineral list and the fitted calibration (read after the spectra are classified:
    the physics calibrates on its first call).

    Examples
    --------
    >>> point_record(load_model(), "encoder")
    {'classifier': 'encoder'}
    """
    enc = bundle.encoder
    if not hasattr(enc, "record"):
        return {"classifier": classifier}
    rec = enc.record()
    out = {
        "classifier": f"{rec['classifier']} ({rec['classes']} minerals: {rec['minerals']}; unknown where none fits)"
    }
    cal = (rec.get("calibration") or {}).get("instrument")
    if rec.get("note"):
        out["calibration"] = rec["note"]
    elif cal:
        out["calibration (fitted)"] = (
            f"{cal['beam_kev']:g} kV, offset {cal['offset_ev']:+.1f} eV, gain {cal['gain']:.5f}, "
            f"FWHM at Mn Kα {cal['fwhm_mnka_ev']:.1f} eV (point_classifier.json)"
        )
    return out


def make_bundle(model: GATModel, encoder, class_names: list[str], cfg: dict, meta: dict) -> dict:
    """The self-contained model file written as best.pt and shipped as the default model."""
    return {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "model_config": model.config,
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "encoder": None if encoder is None else encoder_blob(encoder),
        "class_names": list(class_names),
        "config": cfg,
        "meta": meta,
    }


def export_bundle(model_file: str | os.PathLike, out: str | os.PathLike, note: str = "") -> Path:
    """Write a shareable model file: the bundle without machine-specific paths, with a note."""
    obj = load_artifact(model_file, BUNDLE_FORMAT, BUNDLE_VERSION, "model")
    cfg = dict(obj["config"])
    cfg["source"] = {k: (None if v is None else Path(v).name) for k, v in cfg.get("source", {}).items()}
    cfg["encoder"] = None if not cfg.get("encoder") else Path(cfg["encoder"]).name
    keep = {k: obj[k] for k in ("format", "version", "model_config", "model_state", "encoder", "class_names")}
    return save_artifact(keep | {"config": cfg, "meta": dict(obj.get("meta", {}), note=note)}, out)


def save_calibrated(
    model_file: str | os.PathLike,
    out: str | os.PathLike,
    record: dict,
    temperature: float = 1.0,
    platt: tuple[float, float] | None = None,
) -> Path:
    """Write a copy of ``model_file`` whose meta holds ``temperature`` and ``platt`` ({"a", "b"}
    or None; the fusion model predicts with them, :func:`load_bundle`,
    :func:`mingraph.learn.fusion_model.calibrated_log_q`) and the ``calibration`` record of how
    they were fitted; the weights and everything else are the file's own.  ``out`` must not be
    ``model_file`` (the file a calibration was measured on stays as it was)."""
    if Path(out).resolve() == Path(model_file).resolve():
        raise InputError(out, "out", "a calibrated copy is written beside the model file, not over it")
    if not temperature > 0:
        raise InputError(model_file, "temperature", f"expected a temperature > 0, got {temperature}")
    obj = load_artifact(model_file, BUNDLE_FORMAT, BUNDLE_VERSION, "model")
    meta = dict(obj.get("meta", {}), temperature=float(temperature), calibration=dict(record))
    meta["platt"] = None if platt is None else {"a": float(platt[0]), "b": float(platt[1])}
    return save_artifact(dict(obj, meta=meta), out)


def point_features(bundle: Bundle, spectra: np.ndarray) -> np.ndarray:
    """(n, D) float32 per-point features a model takes from (n, 3000) measured count spectra
    (:meth:`~mingraph.learn.registry.PhaseModel.point_features`: the encoder's 64-value embeddings
    for the paper's GAT, its class probabilities for the fusion model).  Raises InputError when the
    file holds no encoder."""

    if bundle.encoder is None and physics_record(bundle) is not None:
        raise InputError(
            bundle.path or "model",
            "encoder",
            "this model reads the physics classifier: give --classifier physics",
        )
    if bundle.encoder is None:
        raise InputError("model", "encoder", "this model file holds no spectral encoder")
    return bundle.model.point_features(bundle.encoder, spectra)


def point_classes(bundle: Bundle, features: np.ndarray) -> np.ndarray | None:
    """(N,) int64 class of each EDS point from its :func:`point_features`, by the encoder's
    classifier (what nearest-EDS labelling uses); None when the encoder has no classifier."""
    enc = bundle.encoder
    if enc is None or len(features) == 0:
        return None
    if getattr(enc, "unknown_column", False):  # physics, or a gated encoder: unknown gives -1
        from mingraph.spectra.point_classifier import unclassified_beyond

        return unclassified_beyond(bundle.model.point_classes(enc, features), len(bundle.class_names))
    if getattr(enc, "kind", None) != "cnn" or not enc.n_classes:
        return None
    return bundle.model.point_classes(enc, features)


@torch.no_grad()
def point_probability(bundle: Bundle, features: np.ndarray) -> np.ndarray | None:
    """(N,) float32 probability of each EDS point's class (:func:`point_classes`; unknown's own
    probability for an unknown point) by its point classifier; None when it gives none."""
    enc = bundle.encoder
    if enc is None or len(features) == 0:
        return None
    f = np.asarray(features, np.float32)
    if getattr(enc, "unknown_column", False) or bundle.model.mixes_point_classes:  # class probabilities
        return f.max(1)
    if getattr(enc, "kind", None) != "cnn" or not enc.n_classes:
        return None
    logits = enc.network().head(torch.as_tensor(f))
    return torch.softmax(logits, 1).max(1).values.numpy().astype(np.float32)


def physics_record(bundle: Bundle) -> dict | None:
    """The ``point_features`` record of a model trained on the physics classifier's class
    probabilities (shards of ``build-graphs --classifier physics``), else None.

    Examples
    --------
    >>> physics_record(load_model()) is None
    True
    """
    rec = bundle.config.get("point_features") or {}
    return rec if rec.get("classifier") == "physics" else None


class PhysicsPoints:
    """The physics classifier as the point evidence of a GAT trained on its probabilities.

    :meth:`embed` gives the (n, C + 1) calibrated class probabilities over the mineral list the
    model was trained with (last column unknown): the values its EDS nodes read, as
    ``build-graphs --classifier physics`` stored them.  :attr:`columns` names the model class of
    each of those columns (the recorded ``label_columns`` inverted; -1 for unknown and for a
    mineral the dataset has no class of), so a point's class is in the model's classes.  The
    model predicts its own (the dataset's) classes, so no pixel is named by a mineral group
    (:attr:`groups` is empty).

    Parameters
    ----------
    physics : PhysicsClassifier
        Over the mineral list recorded at training.
    columns : (C + 1,) int64
        Model class of each probability column, -1 where none.
    """

    kind = "physics"
    unknown_column = True
    groups: list = []

    def __init__(self, physics, columns: np.ndarray):
        self.physics = physics
        self.columns = np.asarray(columns, np.int64)

    @property
    def names(self) -> list[str]:
        """The physics' class names (its columns but the last, unknown)."""
        return self.physics.names

    @property
    def fit(self):
        """The fitted calibration (:attr:`PhysicsClassifier.fit`)."""
        return self.physics.fit

    @property
    def note(self) -> str:
        """Why the calibration was not fitted, if it was not."""
        return self.physics.note

    def calibrate(self, summed: np.ndarray):
        """Calibrate the physics on the points' (3000,) summed spectrum."""
        return self.physics.calibrate(summed)

    def embed(self, spectra: np.ndarray) -> np.ndarray:
        """(n, C + 1) float32: the physics' class probabilities of (n, 3000) count spectra."""
        return self.physics.class_probabilities(spectra)

    def fit_quality(self, spectra: np.ndarray) -> np.ndarray:
        """(n,) goodness of fit of each spectrum's best class (:meth:`PhysicsClassifier.fit_quality`)."""
        return self.physics.fit_quality(spectra)

    def record(self) -> dict:
        """The physics' record (:meth:`PhysicsClassifier.record`)."""
        return self.physics.record()


def _physics_points(bundle: Bundle, rec: dict, start, minerals) -> PhysicsPoints:
    """The :class:`PhysicsPoints` of a model trained on physics shards: its recorded mineral
    list (or ``minerals``, which must name the same classes in the same order)."""
    from mingraph.spectra.point_classifier import PhysicsClassifier

    source = bundle.path or "model"
    expected = list(rec.get("class_names") or [])
    listed = rec.get("minerals")
    if minerals is None and listed not in (None, "shipped library"):
        if not Path(listed).is_file():
            raise InputError(
                source,
                "point_features.minerals",
                f"the mineral list this model was trained with ({listed}) is not found: "
                "give --minerals a list of the same classes",
            )
        minerals = listed
    clf = PhysicsClassifier(start, minerals)
    if list(clf.names) != expected:
        given = "the shipped library" if minerals is None else f"--minerals {minerals}"
        differ = next((i for i, (a, b) in enumerate(zip(clf.names, expected)) if a != b), None)
        where = (
            f"{len(clf.names)} classes, expected {len(expected)}"
            if differ is None
            else f"class {differ} is {clf.names[differ]!r}, expected {expected[differ]!r}"
        )
        raise InputError(
            source,
            "point_features.class_names",
            f"expected the {len(expected)} classes this model was trained on ({', '.join(expected[:4])}...); "
            f"{given} names others ({where})",
        )
    columns = np.full(len(expected) + 1, -1, np.int64)
    recorded = rec.get("label_columns")
    if recorded:  # dataset class k is physics column recorded[k] (-1: no column)
        for k, c in enumerate(recorded):
            if 0 <= c < len(expected) and k < len(bundle.class_names):
                columns[c] = k
    else:  # a file that predates the record: matched by exact name, as build-graphs does
        index = {n: k for k, n in enumerate(bundle.class_names)}
        for c, n in enumerate(expected):
            columns[c] = index.get(n, -1)
    return PhysicsPoints(clf, columns)


def with_classifier(bundle: Bundle, classifier: str, start=None, minerals=None) -> Bundle:
    """The model with its point evidence from ``classifier`` (:data:`~mingraph.spectra.point_classifier.CLASSIFIERS`).

    ``encoder`` and ``onnx`` keep the model file's encoder (``onnx`` checks that it is the authors'
    ONNX network); given ``start`` (measured spectra of known beam energy), a CNN encoder feeding a
    model that mixes its points' classes is gated by the physics
    (:class:`~mingraph.spectra.point_classifier.GatedEncoder`: a class the physics finds no fit
    for is unknown); ``physics`` puts a :class:`~mingraph.spectra.point_classifier.PhysicsClassifier`
    (instrument ``start``, mineral list ``minerals``) in its place, and the library's mineral
    names in place of the model's classes: a model that only mixes its points' classes (the
    fusion model) takes any list unchanged.  A GAT trained on the physics' probabilities
    (:func:`physics_record`) takes only ``physics``, over the mineral list it was trained with
    (:class:`PhysicsPoints`; ``minerals`` must name the same classes), and keeps its own classes.

    Raises
    ------
    InputError
        For an unknown classifier, ``physics`` with a model that reads embeddings (the paper's
        GAT), ``onnx`` or ``encoder`` with a model file whose encoder is not that one (or that
        was trained on the physics), and a mineral list other than the one a model was trained on.
    """
    import dataclasses

    from mingraph.spectra.point_classifier import CLASSIFIERS, PhysicsClassifier

    if classifier not in CLASSIFIERS:
        raise InputError(
            "--classifier", "classifier", f"expected one of {', '.join(CLASSIFIERS)}, got {classifier!r}"
        )
    kind = getattr(bundle.encoder, "kind", None)
    rec = physics_record(bundle)
    if rec is not None:  # a GAT trained on the physics' probabilities reads nothing else
        if classifier != "physics":
            raise InputError(
                "--classifier",
                classifier,
                f"{bundle.path or 'this model'} was trained on the physics classifier's class "
                "probabilities: give --classifier physics",
            )
        return dataclasses.replace(bundle, encoder=_physics_points(bundle, rec, start, minerals))
    if classifier == "physics":
        if not bundle.model.mixes_point_classes:
            raise InputError(
                "--classifier",
                "physics",
                f"the {bundle.model.label} reads the encoder's embeddings, not class probabilities: "
                "give --classifier encoder (or use the fusion model)",
            )
        clf = PhysicsClassifier(start, minerals)
        return dataclasses.replace(bundle, encoder=clf, class_names=list(clf.names))
    if bundle.encoder is None:
        raise InputError("model", "encoder", "this model file holds no spectral encoder")
    if classifier == "onnx" and kind != "onnx":
        raise InputError(
            "--classifier", "onnx", f"this model's encoder is a {kind} network, not the authors' ONNX one"
        )
    if start is not None and kind == "cnn" and bundle.encoder.n_classes and bundle.model.mixes_point_classes:
        from mingraph.spectra.point_classifier import GatedEncoder

        return dataclasses.replace(bundle, encoder=GatedEncoder(bundle.encoder, bundle.class_names, start))
    return bundle


_RECORDS = (("recipe", "recipe"), ("code", "code version"), ("data", "data seeds"))


def model_info(path: str | os.PathLike) -> str:
    """What a model file records of how it was made, as text (``mingraph model info``): its
    architecture and classes, the resolved training recipe, the code version and the data's
    seeds, and a plain line for each of those it does not record (files made before recipes were
    recorded; for the shipped model, the repository's reconstruction of its recipe is named).

    Parameters
    ----------
    path : path-like
        A model file, or a training run's folder (its ``best.pt``).

    Returns
    -------
    str
        Lines of text.

    Raises
    ------
    InputError
        No such file, or not a mingraph model file.

    Examples
    --------
    >>> print(model_info(default_model_path()).splitlines()[1])  # doctest: +ELLIPSIS
    architecture: fusion, 50 classes, {'channels': 32, 'heads': 4, 'head_dim': 8, 'k': 8, 'palette': 16, ...}
    """
    from mingraph.learn.recipe import file_sha256, recipe_of_file, reconstruction_of

    p = resolve_model(path)
    obj = load_artifact(p, BUNDLE_FORMAT, BUNDLE_VERSION, "model")
    meta, cfg = dict(obj.get("meta", {})), dict(obj.get("config", {}))
    mc = {k: v for k, v in obj["model_config"].items() if k not in ("arch", "num_classes")}
    enc = obj.get("encoder") or {}
    lines = [
        f"file: {p} (sha256 {file_sha256(p)[:16]}…)",
        f"architecture: {obj['model_config'].get('arch', 'paper')}, {len(obj['class_names'])} classes, {mc}",
        f"encoder: {enc.get('kind', 'none')}, {enc.get('n_classes', 0)} classes"
        + (f", fitted on {enc['meta']['n_fit']} spectra" if "n_fit" in enc.get("meta", {}) else ""),
    ]
    if "epoch" in meta:
        sel = meta.get("metrics", {}).get("val_selection")
        lines.append(f"kept epoch: {meta['epoch'] + 1}" + ("" if sel is None else f", validation {sel:.4f}"))
    if meta.get("note"):
        lines.append(f"note: {meta['note']}")
    if "calibration" in meta:
        cal, pl = meta["calibration"], meta.get("platt")
        how = f"temperature {meta.get('temperature', 1.0):.4g}" + (
            f", Platt a {pl['a']:.4g} b {pl['b']:.4g}" if pl else ""
        )
        lines.append(
            f"calibration: {how} (fitted on {cal.get('fields', '?')} "
            f"{cal.get('split', '?')} fields of {cal.get('dataset', '?')}, ECE {cal.get('ece_before', float('nan')):.3f}"
            f" -> {cal.get('ece_after', float('nan')):.3f})"
        )
    paper = obj["model_config"].get("arch", "paper") == "paper"  # its settings: the config
    missing = [what for key, what in _RECORDS if key not in meta and not (paper and key == "recipe")]
    for key, what in _RECORDS:
        if key in meta:
            same = recipe_of_file(meta[key]) if key == "recipe" and not paper else None
            lines.append(f"{what}:" + ("" if same is None else f" (the repository's {same.name})"))
            lines += _field_lines(meta[key])
    if missing:
        lines.append(f"not recorded in this file: {', '.join(missing)}")
        if cfg:
            lines.append(
                "its config (the paper trainer's settings):" if paper else "its config records only:"
            )
            lines += _field_lines(cfg)
        rec = reconstruction_of(p)
        if rec is not None and "recipe" in missing:
            lines.append(
                f"reconstructed recipe (written afterwards, not recorded when it was trained): {rec[0]}"
            )
            lines += _field_lines({k: v for k, v in rec[1].items() if k not in ("format", "version")})
    return "\n".join(lines)


def _field_lines(record: dict, indent: str = "  ") -> list[str]:
    """``key: value`` lines of a record, a value as compact JSON (an object one level deeper)."""
    import json

    out = []
    for k, v in record.items():
        if isinstance(v, dict) and v:
            out.append(f"{indent}{k}:")
            out += _field_lines(v, indent + "  ")
        else:
            out.append(f"{indent}{k}: {json.dumps(v, ensure_ascii=False)}")
    return out
