"""acquire-study's nearest-EDS labelling on each strategy's own points (issue 23): the recorded
scores against an independent brute-force reference, old records without them, the options."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from scipy.spatial import cKDTree

from mingraph.acquire.simulate import simulate_tile
from mingraph.acquisition import run_session
from mingraph.acquisition.study import run_grid, run_study, table
from mingraph.cli import main
from mingraph.common.files import file_digest
from mingraph.common.metrics import confusion, scores
from mingraph.common.outputs import output_folder
from mingraph.learn.bundle import default_model_path, load_model, point_features

SIZE = 64
BUDGET = 0.02
STRATEGIES = ("grid", "segments", "bright")


@pytest.fixture(scope="module")
def bundle():
    torch.set_num_threads(1)
    return load_model(None)


@pytest.fixture(scope="module")
def fields():
    return [simulate_tile(s, SIZE).field(f"t{s}") for s in (4242, 4243)]


def _brute_nearest(shape, rc, classes):
    """Every pixel's nearest point by a k-d tree, ties to the lowest point index (exact squared
    integer distances), then that point's class."""
    h, w = shape
    pix = np.stack(np.mgrid[:h, :w], -1).reshape(-1, 2)
    k = min(len(rc), 8)
    _, idx = cKDTree(rc).query(pix, k=k)
    idx = idx.reshape(len(pix), k)
    d2 = ((rc[idx] - pix[:, None, :]) ** 2).sum(-1)
    best = d2.min(1, keepdims=True)
    assert k == len(rc) or (d2[:, -1:] > best).all()  # every tie is among the k found
    lowest = np.where(d2 == best, idx, len(rc)).min(1)
    return classes[lowest].reshape(h, w)


def _reference(fields, bundle, method):
    """Pooled F1 of nearest-EDS on the points each field's session chose (sessions rerun with
    the seeds run_grid gives them; a session is deterministic), classes from the spectra anew."""
    n = len(bundle.class_names)
    cm = np.zeros((n, n + 1), np.int64)
    for i, f in enumerate(fields):
        s = run_session(f, bundle, BUDGET, method, seed=i, every_round=False)
        rc = np.asarray(s.points, np.int64)
        classes = point_features(bundle, f.eds.spectra(rc[:, 0], rc[:, 1])).argmax(1)
        cm += confusion(
            np.where(f.valid, f.labels, -1), _brute_nearest(f.shape, rc, classes), n, unclassified=True
        )
    return scores(cm)


@pytest.fixture(scope="module")
def records(fields, bundle):
    return run_grid(fields, bundle, [BUDGET], [*STRATEGIES, "random + nearest EDS"], log=lambda s: None)


@pytest.mark.parametrize("method", STRATEGIES)
def test_nearest_on_the_same_points_equals_a_brute_force_reference(method, records, fields, bundle):
    rec = next(r for r in records if r["method"] == method)
    ref = _reference(fields, bundle, method)
    assert rec["nearest_f1_weighted"] == pytest.approx(ref["f1_weighted"], abs=1e-12)
    assert rec["nearest_f1_macro"] == pytest.approx(ref["f1_macro"], abs=1e-12)
    assert rec["f1_weighted"] != rec["nearest_f1_weighted"]  # the model's own map is scored apart


def test_random_nearest_eds_scores_itself_on_its_points(records):
    rec = next(r for r in records if r["method"] == "random + nearest EDS")
    assert rec["nearest_f1_weighted"] == pytest.approx(rec["f1_weighted"], abs=1e-12)
    assert rec["nearest_f1_macro"] == pytest.approx(rec["f1_macro"], abs=1e-12)
    md = table(records)
    assert "vs nearest EDS on the same points" in md.splitlines()[0]
    same = md.splitlines()[-1].split("|")[7]  # its own column: no gain
    assert all(abs(float(v)) < 5e-4 for v in same.split("/")), md


def test_old_records_without_nearest_scores_resume_and_tabulate(tmp_path):
    out = output_folder(tmp_path / "o", "acquire-study")
    base = {"budget": 0.01, "points_per_field": 10.0, "minutes_per_field": 0.1, "fields": ["test-4242"]}
    tag = file_digest(default_model_path())
    old = base | {"method": "random", "f1_weighted": 0.5, "f1_macro": 0.25, "model": tag}
    new = base | {
        "method": "grid",
        "f1_weighted": 0.6,
        "f1_macro": 0.3,
        "model": tag,
        "nearest_f1_weighted": 0.5,
        "nearest_f1_macro": 0.2,
    }
    (out / "records.jsonl").write_text(json.dumps(old) + "\n" + json.dumps(new) + "\n")
    run_study(out, size=32, seeds=(4242,), large=0, budgets=[0.01], methods=["random", "grid"], log=print)
    study = json.loads((out / "study.json").read_text())
    assert study["tiles"] == [old, new]  # resumed, nothing measured again
    rows = (out / "tables.md").read_text().splitlines()
    assert rows[-2].startswith("| random | 1 |") and "| +0.000 / +0.000 |  |  | 0.100 |" in rows[-2]
    assert rows[-1].startswith("| grid | 1 |") and "| +0.100 / +0.100 | 0.100 |" in rows[-1]
    csv = (out / "records-tiles.csv").read_text().splitlines()
    assert csv[0].endswith("nearest_f1_weighted,nearest_f1_macro") and csv[1].endswith(",,")


@pytest.mark.parametrize(
    "args, name",
    [
        (["--fractions", "0"], "--fractions"),
        (["--fractions", "0.01,x"], "--fractions"),
        (["--seeds", "4242,a"], "--seeds"),
        (["--seeds", "-1"], "--seeds"),
        (["--methods", "random,nope"], "--methods"),
        (["--model", "missing-model.pt"], "missing-model.pt"),
    ],
)
def test_bad_input_is_one_line_naming_the_option_or_file(args, name, tmp_path):
    r = CliRunner().invoke(
        main, ["acquire-study", str(tmp_path / "o"), "--size", "32", "--large", "0", *args]
    )
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and name in lines[0], r.output
    assert not (tmp_path / "o").exists()


def test_cli_runs_chosen_seeds_fractions_and_model(tmp_path):
    args = ["acquire-study", str(tmp_path / "o"), "--size", "32", "--seeds", "4250", "--fractions", "0.02"]
    args += ["--large", "0", "--methods", "grid", "--model", str(default_model_path())]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "vs nearest EDS on the same points" in r.output
    study = json.loads((tmp_path / "o" / "study.json").read_text())
    (rec,) = study["tiles"]
    assert rec["fields"] == ["test-4250"] and rec["budget"] == 0.02 and rec["method"] == "grid"
    assert 0.0 <= rec["nearest_f1_weighted"] <= 1.0
    assert study["settings"]["seeds"] == [4250] and study["settings"]["budgets"] == [0.02]
