"""``mingraph build-graphs``: a raw dataset -> Arrow shards of graphs (tile × fraction × draw).

Work is split into shards of a few tiles each; each shard is written atomically and records a
digest of the job that made it, so a killed run resumes by skipping shards that verify.
EDS points are drawn from a generator seeded by (seed, tile, fraction, draw): the same
arguments give the same graphs, whatever the number of workers.  ``classifier`` chooses the EDS
nodes' features (:mod:`mingraph.graphs.point_features`): without it, an encoder's embeddings or the
raw spectra, as before the option.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mingraph.acquire.dataset import SPLITS, Dataset, open_dataset
from mingraph.acquire.fields import Field
from mingraph.acquire.sampling import PATTERNS, sample_points
from mingraph.common.engine import check_scheduler, run_tasks
from mingraph.common.errors import InputError
from mingraph.common.outputs import output_folder
from mingraph.graphs.conventions import CONVENTIONS
from mingraph.graphs.point_features import PhysicsEvidence, field_instrument, label_columns, physics_choice
from mingraph.graphs.shards import Shard, ShardJob, encode_row, write_shard
from mingraph.graphs.structure import StructuredGraph, build_structured_graph

DEFAULT_FRACTIONS = (0.001, 0.01, 0.05, 0.1)


def draw_rng(seed: int, tile_index: int, fraction: float, draw: int) -> np.random.Generator:
    """The generator for one EDS draw; independent of worker count and order."""
    return np.random.default_rng([seed, tile_index, int(round(fraction * 1e9)), draw])


def field_graph(
    sample: Field,
    tile_index: int,
    fraction: float,
    draw: int,
    pattern: str = "random",
    seed: int = 0,
    lift: float = 1.0,
    encoder=None,
    eds_edges: str = "delaunay",
    k: int = 6,
    convention: str = "paper",
) -> tuple[StructuredGraph, np.ndarray]:
    """Draw EDS points on a sample, read their spectra, embed them, and build the structured graph.

    Returns the graph (labels masked to valid pixels, EDS labels from the pixels they lie on) and
    the raw spectra (n, 3000).  Without an encoder the EDS features are zeros of width 64.
    """
    rc = sample_points(
        sample.valid, fraction, pattern, draw_rng(seed, tile_index, fraction, draw), sample.eds_mask
    )
    return points_graph(sample, rc, lift, encoder, eds_edges, k, convention)


def points_graph(
    sample: Field,
    rc: np.ndarray,
    lift: float = 1.0,
    encoder=None,
    eds_edges: str = "delaunay",
    k: int = 6,
    convention: str = "paper",
    spectra: np.ndarray | None = None,
) -> tuple[StructuredGraph, np.ndarray]:
    """The structured graph of a sample on given EDS points, as :func:`field_graph` builds it.

    Parameters
    ----------
    sample : Field
        The field (BSE, valid mask, labels, EDS source).
    rc : numpy.ndarray
        (n, 2) int row, col of the EDS points, pixels of ``sample``.
    lift, encoder, eds_edges, k, convention
        As :func:`field_graph`.
    spectra : numpy.ndarray, optional
        (n, 3000) the points' spectra, when already read; else read from ``sample.eds``.

    Returns
    -------
    tuple
        The graph (labels masked to valid pixels, EDS labels from the pixels they lie on) and the
        (n, 3000) spectra.

    Examples
    --------
    >>> from mingraph.acquire.simulate import simulate_tile
    >>> f = simulate_tile(1, 24).field("t")
    >>> g, sp = points_graph(f, np.array([[2, 3], [20, 5]]))
    >>> g.n_eds, sp.shape
    (2, (2, 3000))
    """
    rc = np.asarray(rc).reshape(-1, 2)
    n = rc.shape[0]
    if spectra is None:
        spectra = sample.eds.spectra(rc[:, 0], rc[:, 1]) if n else np.zeros((0, 3000), np.float32)
    feat = encoder.embed(spectra) if hasattr(encoder, "embed") else np.zeros((n, 64), np.float32)
    g = build_structured_graph(
        sample.bse, rc, feat, lift=lift, eds_edges=eds_edges, k=k, convention=convention
    )
    if sample.labels is not None:
        lab = np.where(sample.valid, sample.labels, -1).astype(np.int64)
        g.labels = lab
        g.eds_labels = lab[rc[:, 0], rc[:, 1]] if n else np.zeros(0, np.int64)
    return g, spectra


def dataset_digest(path: Path) -> str:
    """A digest of a dataset's identity (its metadata and tile table size), recorded in shards."""
    h = hashlib.sha256((path / "dataset.json").read_bytes())
    h.update(str((path / "tiles.parquet").stat().st_size).encode())
    return h.hexdigest()[:16]


def plan(
    ds: Dataset,
    fractions: Sequence[float],
    draws: int,
    pattern: str,
    seed: int,
    lift: float,
    encoder_digest: str | None,
    tiles_per_shard: int,
    max_tiles: dict | None = None,
    convention: str = "paper",
    point_classifier: dict | None = None,
) -> list[ShardJob]:
    """Shards per split, each of ``tiles_per_shard`` consecutive tiles (the first ``max_tiles[split]`` only)."""
    digest = dataset_digest(ds.path)
    jobs = []
    for split in SPLITS:
        idx = ds.indices(split)[: (max_tiles or {}).get(split)]
        for k in range(0, len(idx), tiles_per_shard):
            jobs.append(
                ShardJob(
                    f"{split}-{k // tiles_per_shard:05d}",
                    idx[k : k + tiles_per_shard],
                    [float(f) for f in fractions],
                    draws,
                    pattern,
                    seed,
                    lift,
                    encoder_digest,
                    digest,
                    ds.class_names,
                    convention,
                    point_classifier,
                )
            )
    return jobs


def is_done(path: Path, job: ShardJob) -> bool:
    """True when ``path`` is a complete, readable shard made by exactly this job."""
    if not path.is_file():
        return False
    try:
        sh = Shard(path)
    except InputError:
        return False
    return sh.job_digest == job.digest() and len(sh) == len(job.tile_indices) * len(job.fractions) * job.draws


def run_job(job: ShardJob, dataset_path: str, encoder_path: str | None, out: str) -> int:
    """Build and write one shard; returns its number of graphs. Runs in worker processes."""
    from mingraph.spectra.encoder import load_encoder

    ds = open_dataset(dataset_path)
    enc = load_encoder(encoder_path) if encoder_path else None
    physics = (job.point_classifier or {}).get("classifier") == "physics"
    rows, calibrations = [], []
    for t in job.tile_indices:
        s = ds.field(t)
        if physics:  # the field's instrument, as predict takes it; calibrated on each graph's points
            start = field_instrument(s, job.point_classifier["beam_kev"], f"{dataset_path} tile {s.name}")
            enc = PhysicsEvidence(start, job.point_classifier["minerals"])
        for f in job.fractions:
            for d in range(job.draws):
                g, spectra = field_graph(
                    s, t, f, d, job.pattern, job.seed, job.lift, enc, convention=job.convention
                )
                rows.append(
                    encode_row(
                        s.name, t, s.meta["split"], f, d, g, s.valid, None if enc is not None else spectra
                    )
                )
                if physics:
                    info = {"tile_id": s.name, "fraction": float(f), "draw": d}
                    calibrations.append(info | {"calibration": enc.calibration})
    write_shard(Path(out) / f"{job.name}.arrow", rows, job, calibrations if physics else None)
    return len(rows)


def build_graphs(
    dataset: str | os.PathLike,
    out: str | os.PathLike,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    draws: int = 1,
    pattern: str = "random",
    encoder: str | os.PathLike | None = None,
    workers: int = 1,
    seed: int = 0,
    lift: float | None = None,
    tiles_per_shard: int = 32,
    progress: bool = True,
    max_tiles: dict | None = None,
    convention: str = "paper",
    scheduler: str | None = None,
    classifier: str | None = None,
    minerals: str | os.PathLike | None = None,
    beam_kev: float | None = None,
    say=None,
) -> dict:
    """Precompute graph shards; skips shards already complete. Returns counts of built/skipped.

    ``workers`` > 1 builds shards on a Dask LocalCluster of that many processes, ``scheduler``
    (tcp://host:port) on an existing Dask cluster whose workers see DATASET and OUT; the address is
    checked (engine.check_scheduler) before OUT is created.

    ``convention`` "paper" or "authors" (graphs/conventions.py) is recorded in each shard's job;
    ``lift`` None takes the convention's EDS height (1 or 5).

    ``classifier`` (``--classifier``) chooses the EDS nodes' features: None (the option not
    given: ``encoder``'s embeddings, or raw spectra without one, as before the option),
    ``encoder`` (the embeddings of ``encoder``), ``onnx`` (those of the authors' ONNX encoder:
    ``encoder`` an ``.onnx`` file or an encoder of kind onnx) or ``physics`` (class probabilities
    over the mineral list ``minerals``, default the shipped library, plus unknown; the beam energy
    ``beam_kev`` or each field's own).  With the physics, the dataset's classes are matched to the
    list's by name (refused when none is shared; ``say`` is told those the list does not name)."""
    from tqdm import tqdm

    if pattern not in PATTERNS:
        raise InputError("--pattern", "pattern", f"expected one of {PATTERNS}, got {pattern!r}")
    if draws < 1:
        raise InputError("--draws", "draws", f"expected at least 1, got {draws}")
    if not fractions or any(not 0 <= f <= 1 for f in fractions):
        raise InputError("--fractions", "fractions", f"expected fractions in [0, 1], got {list(fractions)}")
    if pattern == "mask" and len(fractions) != 1:
        raise InputError(
            "--fractions",
            "fractions",
            "pattern 'mask' takes the measured pixels whatever the fraction: give one value",
        )
    if convention not in CONVENTIONS:
        raise InputError(
            "--convention", "convention", f"expected one of {sorted(CONVENTIONS)}, got {convention!r}"
        )
    lift = CONVENTIONS[convention].lift if lift is None else float(lift)  # default 1 (paper), 5 (authors)
    ds = open_dataset(dataset)
    choice, enc = point_choice(ds, classifier, encoder, minerals, beam_kev, say)
    enc_digest = None if enc is None else enc.digest
    if scheduler is not None:  # before OUT is made: a wrong address is one line, nothing written
        scheduler = check_scheduler(scheduler)
    out = output_folder(out, "build-graphs")
    for stale in out.glob(".*.arrow.*.tmp"):  # left by a killed run
        stale.unlink()
    jobs = plan(
        ds, fractions, draws, pattern, seed, lift, enc_digest, tiles_per_shard, max_tiles, convention, choice
    )
    planned = {f"{j.name}.arrow" for j in jobs}
    for old in out.glob("*.arrow"):  # shards of an earlier, different build: never mix them in
        if old.name not in planned:
            old.unlink()
    if enc is not None and Path(encoder).suffix.lower() == ".onnx":  # the authors' file, as an encoder
        from mingraph.spectra.encoder import save_encoder

        save_encoder(enc, out / "encoder.pt")
        encoder = out / "encoder.pt"
    elif encoder is not None:  # the shards' embeddings travel with the encoder that made them
        shutil.copyfile(encoder, out / "encoder.pt")
    else:
        (out / "encoder.pt").unlink(missing_ok=True)
    todo = [j for j in jobs if not is_done(out / f"{j.name}.arrow", j)]
    per_job = {j.name: len(j.tile_indices) * len(fractions) * draws for j in jobs}
    bar = tqdm(total=sum(per_job.values()), desc="build-graphs", unit="graph", disable=not progress)
    bar.update(sum(per_job[j.name] for j in jobs if j not in todo))
    job = functools.partial(
        run_job,
        dataset_path=str(ds.path),
        encoder_path=None if encoder is None else str(encoder),
        out=str(out),
    )
    try:  # Dask: a LocalCluster of `workers` processes, or the cluster at `scheduler` (mingraph/common/engine.py)
        run_tasks(
            job,
            todo,
            workers=0 if workers <= 1 and not scheduler else workers,
            scheduler=scheduler,
            progress=False,
            say=tqdm.write if progress else None,
            on_result=lambda _, n: bar.update(n),
        )
    finally:
        bar.close()
    return {
        "shards": len(jobs),
        "built": len(todo),
        "skipped": len(jobs) - len(todo),
        "graphs": sum(per_job.values()),
    }


def point_choice(
    ds: Dataset,
    classifier: str | None,
    encoder: str | os.PathLike | None,
    minerals: str | os.PathLike | None,
    beam_kev: float | None,
    say=None,
) -> tuple[dict | None, object]:
    """The shards' ``point_classifier`` record (None without ``--classifier``) and the encoder
    read from ``encoder`` (None for the physics and for raw spectra), each choice checked before
    anything is written.

    Raises
    ------
    InputError
        An unknown classifier; ``encoder`` or ``onnx`` without ``--encoder`` (or ``onnx`` with an
        encoder that is not the authors' ONNX network); ``physics`` with an encoder, or an
        unreadable mineral list, or a dataset whose first field states no beam energy where
        ``--beam-kev`` is not given, or whose classes the list names none of; ``--minerals`` or
        ``--beam-kev`` without ``--classifier physics``.
    """
    from mingraph.spectra.encoder import load_encoder
    from mingraph.spectra.point_classifier import CLASSIFIERS

    if classifier is not None and classifier not in CLASSIFIERS:
        raise InputError(
            "--classifier", "classifier", f"expected one of {', '.join(CLASSIFIERS)}, got {classifier!r}"
        )
    if classifier != "physics":
        for name, v in (("--minerals", minerals), ("--beam-kev", beam_kev)):
            if v is not None:
                raise InputError(
                    name, "classifier", "goes with --classifier physics (the physics' mineral list and beam)"
                )
    if classifier is None:
        return None, None if encoder is None else load_encoder(encoder)
    if classifier == "physics":
        if encoder is not None:
            raise InputError(
                "--encoder", "physics", "the physics classifier's features need no encoder: drop --encoder"
            )
        choice = physics_choice(minerals, beam_kev)
        if len(ds):  # the beam energy: refused now, not in a worker once OUT is made
            first = ds.field(0)
            field_instrument(first, beam_kev, f"{ds.path} tile {first.name}")
        cols = label_columns(ds.class_names, choice["class_names"], ds.path / "dataset.json")
        missing = [n for n, c in zip(ds.class_names, cols) if c < 0]
        if missing and say is not None:
            say(
                f"classes of the dataset that the mineral list does not name (their points are unknown or another class): {missing}"
            )
        return choice | {"label_columns": cols}, None
    if encoder is None:
        raise InputError(
            "--classifier",
            classifier,
            "needs --encoder FILE: "
            + (
                "fit-encoder's encoder"
                if classifier == "encoder"
                else "the authors' ONNX encoder (eds_emb_model.onnx)"
            ),
        )
    if classifier == "onnx" and Path(encoder).suffix.lower() == ".onnx":
        from mingraph.spectra.onnx_encoder import onnx_encoder

        return {"classifier": "onnx"}, onnx_encoder(encoder)
    enc = load_encoder(encoder)
    if classifier == "onnx" and enc.kind != "onnx":
        raise InputError(
            encoder,
            "kind",
            f"expected the authors' ONNX encoder (--classifier onnx), got a {enc.kind} encoder",
        )
    return {"classifier": classifier}, enc
