"""The Markdown/HTML report: relative links that resolve, tables that match the mineralogy CSVs."""

from __future__ import annotations

import csv
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from mingraph.analyse import mineralogy as M
from mingraph.analyse.report import write_report

NAMES = ["quartz", "albite", "pyrite <FeS2> | cubic"]
DENS = [2.65, 2.62, 5.0]


def _field():
    rng = np.random.default_rng(11)
    lab = np.zeros((30, 40), int)
    lab[:, 20:] = 1
    lab[5:12, 5:12] = 2
    lab[20:25, 30:36] = 2
    lab[rng.random(lab.shape) < 0.03] = -1
    valid = np.ones(lab.shape, bool)
    valid[:3, :3] = False
    conf = np.where(rng.random(lab.shape) < 0.05, 0.1, 0.9)
    return lab, valid, conf


@pytest.fixture
def run(tmp_path):
    lab, valid, conf = _field()
    out = tmp_path / "field1"
    out.mkdir()
    mineral = M.write_mineralogy(out / "mineralogy", lab, valid, NAMES, DENS, 2.0, confidence=conf)
    for name in ("overlay.png", "confidence.png"):
        (out / name).write_bytes(mineral["modal_png"].read_bytes())
    (out / "phases.tif").write_bytes(b"II*\x00")
    images = {
        "phase_map": out / "phases.tif",
        "overlay": out / "overlay.png",
        "confidence": out / "confidence.png",
    }
    return out, images, mineral, M.modal_mineralogy(lab, valid, NAMES, DENS, conf)


# the Markdown of the names (worked by hand): HTML specials as entities, "|" escaped
MD_NAME = {"pyrite <FeS2> | cubic": "pyrite &lt;FeS2&gt; \\| cubic"}


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if (tag, k) in (("a", "href"), ("img", "src")):
                self.links.append(v)


def test_report_links_tables_and_numbers(run):
    out, images, mineral, modal = run
    md_path = write_report(
        out, images, mineral, {"eds_points": 12, "model": "gat"}, {"f1": 0.875, "precision": 0.9}
    )
    assert md_path == out / "report.md"
    md = md_path.read_text(encoding="utf-8")
    html_text = (out / "report.html").read_text(encoding="utf-8")

    # every Markdown link and image is relative and resolves
    targets = re.findall(r"\]\(([^)]+)\)", md)
    assert targets
    for t in targets:
        assert not os.path.isabs(t)
        assert (out / t).is_file(), t
    # same for HTML
    parser = _Links()
    parser.feed(html_text)
    assert parser.links
    for t in parser.links:
        assert not os.path.isabs(t) and (out / t).is_file(), t
    for key in ("modal_png", "grain_size_png", "association_png"):
        assert f'src="mineralogy/{mineral[key].name}"' in html_text
    assert 'src="overlay.png"' in html_text and 'src="confidence.png"' in html_text
    assert 'href="phases.tif"' in html_text and 'src="phases.tif"' not in html_text  # TIFF linked, not shown
    for key in ("modal_csv", "grains_csv", "grain_size_distribution_csv", "association_csv", "summary_json"):
        assert f"mineralogy/{mineral[key].name}" in md

    # the modal table shows the CSV's numbers, most abundant first
    with open(mineral["modal_csv"], newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["pixels"]) > 0]
    rows.sort(key=lambda r: -float(r["area_pct"]))
    phase_lines = [
        line
        for line in md.splitlines()
        if any(line.startswith(f"| {MD_NAME.get(r['phase'], r['phase'])} |") for r in rows)
    ]
    assert len(phase_lines) == len(rows)
    for line, r in zip(phase_lines, rows):
        assert f"{float(r['area_pct']):.2f}" in line and f"{float(r['mass_pct']):.2f}" in line
    # summary numbers: from the mineralogy JSON and from the caller
    assert "30 x 40" in md and "| pixel size (µm) | 2 |" in md
    assert f"{100 * modal.unclassified_fraction:.2f} %" in md
    assert f"{100 * modal.low_confidence_fraction:.2f} %" in md
    assert "| EDS points | 12 |" in md and "| EDS points, % of pixels | 1.00 % |" in md  # 12 / 1200
    assert "| f1 | 0.875 |" in md
    # names are escaped in HTML and in Markdown tables
    assert "pyrite &lt;FeS2&gt; | cubic" in html_text and "<FeS2>" not in html_text
    assert "pyrite &lt;FeS2&gt; \\| cubic" in md and "<FeS2>" not in md
    # the swatch colour is the phase map's colour
    assert "background:#1f77b4" in html_text  # tab20[0], quartz
    # a single field without resin: liberation is meaningless and not shown
    assert "liberated" not in md
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == [
        "confidence.png",
        "overlay.png",
        "phases.tif",
        "report.html",
        "report.md",
        "report.xlsx",  # the tables as one workbook (tests/test_workbook.py)
    ]


def test_report_without_metrics_or_mineralogy(tmp_path):
    p = write_report(tmp_path, summary={"field_px": (10, 20), "pixel_size_um": 0.5, "eds_points": 0})
    md = p.read_text()
    assert "Scores" not in md and "Modal" not in md and "| EDS points | 0 |" in md
    assert (tmp_path / "report.html").is_file()
    assert sorted(os.listdir(tmp_path)) == ["report.html", "report.md"]


def test_report_per_class_metrics_and_rewrite(run):
    out, images, mineral, _ = run
    metrics = {
        "macro_f1": 0.5,
        "per_class": {"quartz": {"f1": 0.9, "support": 100}, "albite": {"f1": 0.1, "support": 3}},
    }
    write_report(out, images, mineral, {}, metrics, title="Field 1 <test>")
    md = (out / "report.md").read_text()
    html_text = (out / "report.html").read_text()
    assert "| quartz | 0.9 | 100 |" in md and "| macro f1 | 0.5 |" in md
    assert "<title>Field 1 &lt;test&gt;</title>" in html_text
    write_report(out, images, mineral)  # overwrite without metrics
    assert "Scores" not in (out / "report.md").read_text()
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]


def test_report_shows_liberation_for_particles_in_resin(tmp_path):
    lab = np.full((20, 20), -1)
    valid = np.zeros((20, 20), bool)
    lab[2:6, 2:6] = 0
    lab[10:16, 10:16] = 1
    lab[10:12, 10:12] = 0
    valid[lab >= 0] = True
    mineral = M.write_mineralogy(tmp_path / "m", lab, valid, ["a", "b"], None, 1.0)
    md = write_report(tmp_path, mineralogy=mineral).read_text()
    # a: 16 px free in particle 1 and 4 px in particle 2 (4/36 = 11 %): 80 % in class 100, 20 % in 10-20
    assert "Liberation by area % of the particle" in md
    assert "| class 100 | 80.0 | 0.0 |" in md and "| class 10-20 | 20.0 | 0.0 |" in md
    assert "| class 80-90 | 0.0 | 100.0 |" in md  # b is 32/36 = 89 % of its particle
    assert Path(tmp_path / "report.html").read_text().count("<img") == 5


def test_links_to_names_with_spaces(tmp_path):
    img = tmp_path / "maps (v2)" / "phase overlay.png"
    img.parent.mkdir()
    img.write_bytes(b"\x89PNG")
    md = write_report(tmp_path, {"overlay": img}).read_text()
    assert "](maps%20%28v2%29/phase%20overlay.png)" in md
    assert 'src="maps%20%28v2%29/phase%20overlay.png"' in (tmp_path / "report.html").read_text()
