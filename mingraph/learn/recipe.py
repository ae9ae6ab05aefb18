"""The fusion model's training recipe: every choice ``mingraph train --arch fusion`` makes, in one
JSON file (``--recipe FILE``; the shipped model's is ``mingraph/data/recipes/fusion-default.json``).

A recipe is a JSON object of :data:`DEFAULTS` keys (any subset; the rest keep their defaults),
plus ``format`` (``"mingraph-fusion-recipe"``), ``version`` and a free-text ``about``.  Two keys
name the inputs: ``fields`` (a simulated dataset by its tile seeds, built into the run folder,
:func:`simulate_fields`) and ``encoder`` (``"shipped"``: the shipped model's CNN encoder, or an
encoder file).  Command-line options win over the recipe, and the recipe over the defaults
(:func:`resolve`).  The model file records the resolved recipe, the code version
(:func:`code_version`) and the data's seeds; ``mingraph model info FILE`` prints them.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from mingraph.common.errors import InputError
from mingraph.learn.training_inputs import check_inputs
from mingraph.version import __version__

RECIPE_FORMAT = "mingraph-fusion-recipe"
RECIPE_VERSION = 1

DEFAULTS: dict = {
    "fields": None,  # None: the --online dataset; or {"simulate": {...}} (simulate_fields)
    "encoder": None,  # None: --encoder; "shipped": the shipped model's encoder; or a file
    "classifier": "encoder",  # point evidence: the encoder's class probabilities, or "physics" (training_evidence)
    "epochs": 6,
    "batch_size": 4,
    "crop": 128,  # px; at most the smallest training field
    "fraction_range": [0.005, 0.05],  # EDS fraction, log-uniform per item
    "draws": 1,  # items per field and epoch
    "noise": "fresh",  # fresh: every item new each epoch; fixed: the same draws every epoch
    "points": "random",  # random, grid (TIMA dots) or a list to draw from per item (point-spectra
    # fields: always a random subset of their measured points)
    "mask": "exact",  # the specimen mask the model is given: exact, none, window, rough, or a list
    "mask_window": [0.05, 0.25],  # window: the MinBse level, a fraction of the crop's BSE range
    "mask_rough_px": 3,  # rough: grown or shrunk by up to this many pixels
    "bse_augment": {},  # gamma, gain, offset, noise ([low, high]), drift (amplitude), charging (p)
    "counts_range": None,  # [low, high]: a spectrum's counts × a factor log-uniform in it
    "lr": 3e-3,
    "weight_decay": 1e-4,
    "schedule": "one-cycle",  # or "constant"
    "warmup": 0.1,  # one-cycle: share of the steps that ramp up (at least 3 steps)
    "balanced": 0.0,  # class weights ∝ frequency^-balanced (0 = plain NLL)
    "val_fractions": [0.01, 0.05],
    "val_max_fields": 32,
    "max_train_fields": None,
    "seed": 0,  # model initialisation and every draw
    "threads": None,
    "device": "auto",  # cpu, cuda, cuda:N or auto
    "deterministic": True,  # torch's deterministic algorithms: the same recipe, the same weights
    "channels": 32,
    "heads": 4,
    "head_dim": 8,
    "k": 8,
    "palette": 0,  # the field-level palette path's width (0: candidates only)
    "mask_input": True,  # the model reads the specimen mask (False: BSE only)
    "standardise": "valid",  # the BSE's median and spread over: valid pixels, or around the points
}
"""Every training choice of the fusion model, with its default."""

_POS_INT = ("a positive integer", lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0)
_NUMBER = ("a number >= 0", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0)
_OPT_POS_INT = ("a positive integer or null", lambda v: v is None or _POS_INT[1](v))


def _fractions(v) -> bool:
    return isinstance(v, list) and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x <= 1 for x in v
    )


_INPUTS = ("(training_inputs.check_inputs)", lambda v: True)  # checked there, one line each
_CHECKS: dict = {
    "fields": ('null or {"simulate": {...}}', lambda v: v is None or isinstance(v, dict)),
    "encoder": ('null, "shipped" or an encoder file', lambda v: v is None or isinstance(v, str)),
    "classifier": ('"encoder" or "physics"', lambda v: v in ("encoder", "physics")),
    "epochs": _POS_INT,
    "batch_size": _POS_INT,
    "crop": _POS_INT,
    "fraction_range": (
        "[low, high] with 0 < low <= high <= 1",
        lambda v: _fractions(v) and len(v) == 2 and v[0] <= v[1],
    ),
    "draws": _POS_INT,
    "noise": ('"fresh" or "fixed"', lambda v: v in ("fresh", "fixed")),
    "points": (
        '"random", "grid" or a list of them',
        lambda v: (
            v in ("random", "grid")
            or (isinstance(v, list) and bool(v) and all(x in ("random", "grid") for x in v))
        ),
    ),
    "counts_range": (
        "null or [low, high] with 0 < low <= high",
        lambda v: (
            v is None
            or (
                isinstance(v, list)
                and len(v) == 2
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in v)
                and v[0] <= v[1]
            )
        ),
    ),
    "mask": _INPUTS,
    "mask_window": _INPUTS,
    "mask_rough_px": _INPUTS,
    "bse_augment": _INPUTS,
    "lr": ("a number > 0", lambda v: _NUMBER[1](v) and v > 0),
    "weight_decay": _NUMBER,
    "schedule": ('"one-cycle" or "constant"', lambda v: v in ("one-cycle", "constant")),
    "warmup": ("a number in (0, 1)", lambda v: _NUMBER[1](v) and 0 < v < 1),
    "balanced": _NUMBER,
    "val_fractions": ("a list of fractions in (0, 1]", _fractions),
    "val_max_fields": (
        "an integer >= 0",
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    ),
    "max_train_fields": _OPT_POS_INT,
    "seed": ("an integer >= 0", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0),
    "threads": _OPT_POS_INT,
    "device": ("cpu, cuda, cuda:N or auto", lambda v: isinstance(v, str)),
    "deterministic": ("true or false", lambda v: isinstance(v, bool)),
    "channels": _POS_INT,
    "heads": _POS_INT,
    "head_dim": _POS_INT,
    "k": _POS_INT,
    "palette": ("an integer >= 0", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0),
    "mask_input": ("true or false", lambda v: isinstance(v, bool)),
    "standardise": ('"valid" or "points"', lambda v: v in ("valid", "points")),
}
_SIMULATE_KEYS = {"size", "train_seeds", "val_seeds", "params"}


def check(values: dict, source: object) -> dict:
    """``values`` (recipe keys) checked; returns them.

    Parameters
    ----------
    values : dict
        Recipe keys and values (:data:`DEFAULTS` keys).
    source : object
        What to name in an error: the recipe file, or ``"--set"``.

    Returns
    -------
    dict
        ``values`` unchanged.

    Raises
    ------
    InputError
        An unknown key, or a value of the wrong kind (one line: the source, the key, what was
        expected).

    Examples
    --------
    >>> check({"crop": 96}, "recipe.json")
    {'crop': 96}
    >>> check({"crop": 0}, "recipe.json")
    Traceback (most recent call last):
    ...
    mingraph.common.errors.InputError: recipe.json: crop: expected a positive integer, got 0
    """
    for key, value in values.items():
        if key not in _CHECKS:
            raise InputError(source, key, f"not a recipe field; known: {', '.join(DEFAULTS)}")
        what, ok = _CHECKS[key]
        if not ok(value):
            raise InputError(source, key, f"expected {what}, got {json.dumps(value)}")
    if values.get("fields") is not None:
        _check_fields(values["fields"], source)
    if values.get("classifier") == "physics" and values.get("balanced"):
        raise InputError(
            source, "balanced", "class weights are per dataset class: train on the physics with balanced 0"
        )
    check_inputs(values, source)
    return values


def _check_fields(fields: dict, source: object) -> None:
    sim = fields.get("simulate") if set(fields) == {"simulate"} else None
    if not isinstance(sim, dict) or not {"size", "train_seeds"} <= set(sim) <= _SIMULATE_KEYS:
        raise InputError(
            source,
            "fields",
            'expected {"simulate": {"size": N, "train_seeds": [first, stop], "val_seeds": [first, stop]}}',
        )
    if not _POS_INT[1](sim["size"]):
        raise InputError(source, "fields.simulate.size", f"expected a positive integer, got {sim['size']!r}")
    for key in ("train_seeds", "val_seeds"):
        v = sim.get(key, [0, 0])
        if not (
            isinstance(v, list)
            and len(v) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v)
            and v[0] <= v[1]
        ):
            raise InputError(
                source,
                f"fields.simulate.{key}",
                f"expected [first, stop] seeds, 0 <= first <= stop, got {v!r}",
            )
    if not isinstance(sim.get("params", {}), dict):
        raise InputError(source, "fields.simulate.params", "expected an object of simulator parameters")


def load_recipe(path: str | os.PathLike) -> dict:
    """The recipe keys of a recipe file (``format``, ``version`` and ``about`` dropped), checked.

    Parameters
    ----------
    path : path-like
        A JSON recipe file.

    Returns
    -------
    dict
        Its :data:`DEFAULTS` keys and values.

    Raises
    ------
    InputError
        No such file, not JSON, not a fusion recipe (``format``/``version``), an unknown key or a
        bad value (:func:`check`).

    Examples
    --------
    >>> load_recipe(shipped_recipe_path())["crop"]
    128
    """
    p = Path(path)
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(p, "--recipe", "no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(p, "--recipe", f"expected a JSON recipe file ({e})") from None
    if not isinstance(obj, dict) or obj.get("format") != RECIPE_FORMAT:
        raise InputError(p, "format", f'expected "{RECIPE_FORMAT}"')
    if obj.get("version") != RECIPE_VERSION:
        raise InputError(p, "version", f"expected {RECIPE_VERSION}, got {obj.get('version')!r}")
    body = {k: v for k, v in obj.items() if k not in ("format", "version", "about", "reconstructs")}
    return check(body, p)


def resolve(recipe: dict | None = None, overrides: dict | None = None) -> dict:
    """:data:`DEFAULTS`, updated by ``recipe`` and then by the ``overrides`` that are not None.

    Parameters
    ----------
    recipe : dict or None
        Recipe keys (:func:`load_recipe`).
    overrides : dict or None
        Recipe keys from the command line; None values are left out.

    Returns
    -------
    dict
        Every :data:`DEFAULTS` key.

    Raises
    ------
    InputError
        An unknown key or a bad value (:func:`check`).

    Examples
    --------
    >>> resolve({"crop": 96}, {"crop": 64, "epochs": None})["crop"]
    64
    """
    cfg = dict(DEFAULTS)
    cfg.update(check(dict(recipe or {}), "recipe"))
    cfg.update(check({k: v for k, v in (overrides or {}).items() if v is not None}, "train"))
    check({k: cfg[k] for k in ("classifier", "balanced")}, "train")  # the file's and the options' together
    return cfg


def recipes_folder() -> Path:
    """The folder of the repository's recipe files, ``mingraph/data/recipes/``.

    Examples
    --------
    >>> sorted(p.name for p in recipes_folder().glob("*.json"))
    ['fusion-default.json', 'fusion-prototype-a.json']
    """
    return Path(__file__).resolve().parents[1] / "data" / "recipes"


def shipped_recipe_path() -> Path:
    """The recipe of the shipped fusion model, ``mingraph/data/recipes/fusion-default.json``."""
    return recipes_folder() / "fusion-default.json"


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def reconstruction_of(model_file: str | os.PathLike) -> tuple[Path, dict] | None:
    """The repository's recipe that says it reconstructs ``model_file`` (the same SHA-256 in its
    ``reconstructs``): how ``model info`` names the recipe of a file made before recipes were
    recorded (``fusion-prototype-a.json``: the fusion model shipped before issue 23's retrain).

    Parameters
    ----------
    model_file : path-like
        A model file.

    Returns
    -------
    (Path, dict) or None
        The recipe file and its JSON object; None when no recipe names this file.

    Raises
    ------
    OSError
        ``model_file`` cannot be read.

    Examples
    --------
    >>> from mingraph.learn.bundle import default_model_path
    >>> reconstruction_of(default_model_path()) is None  # the shipped file records its own recipe
    True
    """
    digest = None
    for p in sorted(recipes_folder().glob("*.json")):
        obj = json.loads(p.read_text(encoding="utf-8"))
        want = obj.get("reconstructs", {}).get("sha256")
        if want is None:
            continue
        digest = digest or file_sha256(model_file)
        if want == digest:
            return p, obj
    return None


def recipe_of_file(recipe: dict) -> Path | None:
    """The repository's recipe file whose resolved recipe is ``recipe`` (a model file's recorded
    one): ``model info`` on the shipped model names ``fusion-default.json``.

    Parameters
    ----------
    recipe : dict
        Recipe keys (:data:`DEFAULTS`), as a model file's ``meta["recipe"]`` records them.

    Returns
    -------
    Path or None
        The matching recipe file; None when none matches or ``recipe`` is no valid recipe.

    Examples
    --------
    >>> recipe_of_file(load_recipe(shipped_recipe_path())).name
    'fusion-default.json'
    >>> recipe_of_file(dict(load_recipe(shipped_recipe_path()), epochs=7)) is None
    True
    >>> recipe_of_file("not a recipe") is None
    True
    """
    try:
        want = resolve(recipe)
    except (InputError, TypeError, ValueError, AttributeError):
        return None
    for p in sorted(recipes_folder().glob("*.json")):
        try:
            if resolve(load_recipe(p)) == want:
                return p
        except InputError:
            continue
    return None


def code_version() -> dict:
    """What code trained a model: ``{"mingraph": version, "git_commit": hex or None,
    "git_dirty": bool or None}`` (the commit when the package runs from a git checkout).

    Examples
    --------
    >>> sorted(code_version())
    ['git_commit', 'git_dirty', 'mingraph']
    """
    root = Path(__file__).resolve().parents[2]
    out = {"mingraph": __version__, "git_commit": None, "git_dirty": None}
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return out
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return out
    out["git_commit"] = commit.stdout.strip()
    out["git_dirty"] = bool(dirty.stdout.strip()) if dirty.returncode == 0 else None
    return out


def simulate_fields(out: str | os.PathLike, spec: dict, progress: bool = False) -> Path:
    """The dataset of a recipe's ``fields``: one simulated tile per seed, ``train_seeds`` [first,
    stop) in split ``train`` and ``val_seeds`` in ``val`` (``simulate_tile(seed, size, size,
    params)``), written to ``out``; an existing dataset there built from the same spec is reused.

    Raises
    ------
    InputError
        ``out`` holds a dataset built from another spec.
    """
    from tqdm import tqdm

    from mingraph.acquire.dataset import open_dataset, write_dataset
    from mingraph.acquire.importing import simulated_record
    from mingraph.acquire.simulate import simulate_tile
    from mingraph.acquire.simulate.minerals import class_names

    sim = dict(spec["simulate"])
    out = Path(out)
    meta = {
        "kind": "simulated",
        "recipe_fields": spec,
        "tile_size": sim["size"],
        "params": sim.get("params", {}),
    }
    if out.exists():
        have = open_dataset(out).info.get("recipe_fields")
        if have != spec:
            raise InputError(out, "fields", "this folder holds a dataset of other fields; use another --out")
        return out
    seeds = [("train", s) for s in range(*sim["train_seeds"])]
    seeds += [("val", s) for s in range(*sim.get("val_seeds", [0, 0]))]

    def records():
        for split, s in tqdm(seeds, desc="simulate", unit="field", disable=not progress):
            t = simulate_tile(s, sim["size"], sim["size"], sim.get("params") or None)
            yield simulated_record(t, f"seed-{s}", split)

    return write_dataset(out, records(), class_names(), meta=meta)
