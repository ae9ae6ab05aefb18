"""One page per field for people: report.md and report.html linking the maps, tables and plots of a prediction.

Plain string templates, no template engine. Links are relative to the report folder, so the folder
can be zipped, moved or served as it is. Both files are written atomically.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mingraph.analyse.mineralogy_report import process_sections
from mingraph.analyse.report_csv import parse_float, read_rows
from mingraph.common.escapes import md_text
from mingraph.common.files import write_text

__all__ = ["write_report"]

# summary keys we know how to show, in order: key -> label (formatting in _fmt_summary)
_SUMMARY_LABELS: dict[str, str] = {
    "input": "input",
    "field_px": "field size (pixels, H x W)",
    "field_um": "field size (µm, H x W)",
    "pixel_size_um": "pixel size (µm)",
    "eds_points": "EDS points",
    "eds_fraction": "EDS points, % of pixels",
    "n_valid": "valid pixels",
    "unclassified_fraction": "unclassified, % of valid pixels",
    "low_confidence_fraction": "low confidence, % of valid pixels",
    "min_confidence": "confidence threshold",
    "n_grains": "grains",
    "n_particles": "particles (resin and watershed separated)",
    "model": "model",
    "checkpoint": "checkpoint",
    "runtime_s": "run time (s)",
}
_PERCENT_KEYS = {"eds_fraction", "unclassified_fraction", "low_confidence_fraction"}
# what the mineralogy summary contributes when the caller's summary does not say
_FROM_MINERALOGY = (
    "field_px",
    "field_um",
    "pixel_size_um",
    "n_valid",
    "unclassified_fraction",
    "low_confidence_fraction",
    "min_confidence",
    "n_grains",
    "n_particles",
)
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}
_PLOTS = (
    ("modal_png", "Modal mineralogy"),
    ("grain_size_png", "Grain-size distribution"),
    ("association_png", "Phase association"),
    ("liberation_png", "Cumulative liberation yield"),
    ("grade_recovery_png", "Theoretical grade–recovery"),
)


def _num(v: Any, digits: int = 4) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-"
        if v == int(v) and abs(v) < 1e15:
            return f"{int(v):,}" if abs(v) >= 1000 else f"{v:g}"
        return f"{v:.{digits}g}"
    if isinstance(v, (list, tuple)):
        return " x ".join(_num(x, digits) for x in v)
    if v is None:
        return "-"
    return str(v)


def _fmt_summary(key: str, v: Any) -> str:
    if key in _PERCENT_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool):
        return f"{100.0 * v:.2f} %"
    if isinstance(v, Mapping):
        return json.dumps(v, default=str)
    return _num(v)


def _rel(path: Any, out_dir: Path) -> str:
    """A relative, URL-quoted link from the report folder (spaces and brackets in names stay safe)."""
    return quote(Path(os.path.relpath(Path(path).resolve(), out_dir.resolve())).as_posix(), safe="/")


def _label(name: str) -> str:
    return name.replace("_", " ")


def _md_cell(s: str) -> str:
    return md_text(s)


def _md_table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    align = align or ["l"] * len(header)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(
    header: list[str], rows: list[list[str]], align: list[str] | None = None, raw_first: bool = False
) -> str:
    align = align or ["l"] * len(header)
    th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for r in rows:
        cells = []
        for i, c in enumerate(r):
            cls = ' class="num"' if align[i] == "r" else ""
            cells.append(f"<td{cls}>{c if (raw_first and i == 0) else html.escape(c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>\n<thead><tr>{th}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>"


def _html_links(title: str, links: list[tuple[str, str, str]]) -> list[str]:
    """An HTML section: heading ``title`` and a list of links, each (href, text, note) shown as
    ``text (note)``; all escaped."""
    e = html.escape
    items = [f'<li><a href="{e(href)}">{e(text)}</a> ({e(note)})</li>' for href, text, note in links]
    return [f"<h2>{e(title)}</h2>", "<ul>", *items, "</ul>"]


def _modal_rows(
    mineralogy: Mapping[str, Any], colours: Mapping[str, str], n_particles: int
) -> tuple[list[str], list[list[str]], list[str], list[str]]:
    """Modal table (phases present, most abundant first) joined with grain counts and D50."""
    modal = read_rows(mineralogy["modal_csv"]) if "modal_csv" in mineralogy else []
    grains = (
        {r.get("class_id"): r for r in read_rows(mineralogy["grain_summary_csv"])}
        if "grain_summary_csv" in mineralogy
        else {}
    )
    present = [r for r in modal if (parse_float(r.get("pixels")) or 0) > 0]
    present.sort(key=lambda r: -(parse_float(r.get("area_pct")) or 0.0))
    has_mass = any(parse_float(r.get("mass_pct")) is not None for r in present)
    has_ci = any(parse_float(r.get("area_ci_low")) is not None for r in present)
    header = ["phase", "area % (95 % interval)" if has_ci else "area %"]
    header += (["mass % (95 % interval)" if has_ci else "mass %"] if has_mass else []) + ["pixels"]
    if grains:
        header += ["grains", "D50 ECD (µm)"]
    rows, swatches = [], []

    def with_ci(v: float | None, lo: Any, hi: Any) -> str:
        if v is None:
            return "-"
        lo, hi = parse_float(lo), parse_float(hi)
        return f"{v:.2f}" + (f" ({lo:.2f}–{hi:.2f})" if lo is not None and hi is not None else "")

    for r in present:
        row = [
            r.get("phase", ""),
            with_ci(parse_float(r.get("area_pct")) or 0.0, r.get("area_ci_low"), r.get("area_ci_high")),
        ]
        if has_mass:
            row.append(with_ci(parse_float(r.get("mass_pct")), r.get("mass_ci_low"), r.get("mass_ci_high")))
        row.append(_num(int(parse_float(r.get("pixels")) or 0)))
        if grains:
            g = grains.get(r.get("class_id"), {})
            row += [_num(int(parse_float(g.get("grains")) or 0)), _num(parse_float(g.get("d50_um")), 3)]
        rows.append(row)
        swatches.append(colours.get(r.get("phase", ""), ""))
    align = ["l"] + ["r"] * (len(header) - 1)
    return header, rows, align, swatches


def write_report(
    out_dir: str | os.PathLike,
    images: Mapping[str, str | os.PathLike] | None = None,
    mineralogy: Mapping[str, str | os.PathLike] | None = None,
    summary: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    *,
    title: str = "mingraph phase-map report",
) -> Path:
    """Write report.md, report.html and (with ``mineralogy``) report.xlsx in ``out_dir``; return report.md's path.

    ``images``: named pictures, e.g. {"phase_map": "phases.tif", "overlay": "overlay.png",
    "confidence": "confidence.png"}; PNG/JPEG/SVG are shown, others (TIFF) linked. ``mineralogy``:
    the dict that :func:`mingraph.analyse.mineralogy.write_mineralogy` returns. ``summary``: numbers about
    the run (field_px, pixel_size_um, eds_points, unclassified_fraction, ... and any other key);
    what it lacks is taken from the mineralogy JSON. ``metrics``: scores against truth (f1, ...;
    a nested mapping per class is shown as a table).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images = dict(images or {})
    mineralogy = dict(mineralogy or {})
    metrics = dict(metrics or {})

    min_json: dict[str, Any] = {}
    if "summary_json" in mineralogy:
        try:
            min_json = json.loads(Path(mineralogy["summary_json"]).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            min_json = {}
    summ: dict[str, Any] = {k: min_json[k] for k in _FROM_MINERALOGY if k in min_json}
    summ.update(summary or {})
    if "eds_fraction" not in summ and "eds_points" in summ and "field_px" in summ:
        try:
            h, w = summ["field_px"]
            summ["eds_fraction"] = float(summ["eds_points"]) / float(h * w)
        except (TypeError, ValueError, ZeroDivisionError):
            pass
    colours = {p.get("phase", ""): p.get("colour", "") for p in min_json.get("phases", [])}

    keys = [k for k in _SUMMARY_LABELS if k in summ] + [k for k in summ if k not in _SUMMARY_LABELS]
    summary_rows = [[_SUMMARY_LABELS.get(k, _label(k)), _fmt_summary(k, summ[k])] for k in keys]

    scalar_metrics = [
        [_label(k), _num(v)]
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    nested = {
        k: v
        for k, v in metrics.items()
        if isinstance(v, Mapping) and v and all(isinstance(x, Mapping) for x in v.values())
    }
    other_metrics = [
        [_label(k), _fmt_summary(k, v)]
        for k, v in metrics.items()
        if k not in nested and not (isinstance(v, (int, float)) and not isinstance(v, bool))
    ]

    modal_header, modal_rows, modal_align, swatches = (
        _modal_rows(mineralogy, colours, int(min_json.get("n_particles", 0)))
        if mineralogy
        else ([], [], [], [])
    )

    shown = [(k, p) for k, p in images.items() if Path(p).suffix.lower() in _IMAGE_SUFFIXES]
    plots = [(k, t) for k, t in _PLOTS if k in mineralogy]
    data_files = [(k, p) for k, p in mineralogy.items() if not k.endswith("_png")]
    if mineralogy:  # written below, after the HTML: every table as one sheet
        data_files.append(("workbook: every table, one sheet each", out / "report.xlsx"))
    linked_images = list(images.items())

    # ---------------- Markdown
    md: list[str] = [f"# {md_text(title)}", ""]
    if summary_rows:
        md += ["## Summary", "", _md_table(["", "value"], summary_rows, ["l", "r"]), ""]
    if scalar_metrics or other_metrics or nested:
        md += ["## Scores against truth", ""]
        if scalar_metrics or other_metrics:
            md += [_md_table(["metric", "value"], scalar_metrics + other_metrics, ["l", "r"]), ""]
        for k, table in nested.items():
            cols = list(dict.fromkeys(c for v in table.values() for c in v))
            md += [
                f"**{md_text(_label(k))}**",
                "",
                _md_table(
                    ["", *cols],
                    [[str(n), *[_num(v.get(c)) for c in cols]] for n, v in table.items()],
                    ["l"] + ["r"] * len(cols),
                ),
                "",
            ]
    if linked_images:
        md += ["## Maps", ""]
        for k, p in linked_images:
            rel = _rel(p, out)
            md.append(f"- [{md_text(_label(k))}]({rel})")
        md.append("")
        for k, p in shown:
            md += [f"![{md_text(_label(k))}]({_rel(p, out)})", ""]
    if modal_rows:
        note = ""
        if "unclassified_fraction" in summ or "low_confidence_fraction" in summ:
            note = (
                f"Percentages are of classified pixels; unclassified "
                f"({_fmt_summary('unclassified_fraction', summ.get('unclassified_fraction', 0.0))}) and low-confidence "
                f"({_fmt_summary('low_confidence_fraction', summ.get('low_confidence_fraction', 0.0))}) pixels are not included. "
                "Mass % = area % x density (polished-section approximation)."
            )
        if min_json.get("rule"):
            note += " " + str(min_json["rule"])
        md += ["## Modal mineralogy", "", _md_table(modal_header, modal_rows, modal_align), ""]
        if note:
            md += [md_text(note, line_start=True), ""]
    sections = process_sections(mineralogy, min_json) if mineralogy else []
    for sec in sections:
        md += [f"## {md_text(sec.title)}", "", _md_table(sec.header, sec.rows, sec.align), ""]
        md += [*[md_text(n, line_start=True) for n in sec.notes], ""] if sec.notes else []
    if plots:
        md += ["## Plots", ""]
        for k, t in plots:
            md += [f"### {md_text(t)}", "", f"![{md_text(t)}]({_rel(mineralogy[k], out)})", ""]
    if data_files:
        md += ["## Data files", ""]
        md += [f"- [{md_text(Path(p).name)}]({_rel(p, out)}) ({md_text(_label(k))})" for k, p in data_files]
        md.append("")
    md_path = write_text(out / "report.md", "\n".join(md).rstrip() + "\n")

    # ---------------- HTML
    e = html.escape
    h: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{e(title)}</title>",
        "<style>",
        "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}",
        "table{border-collapse:collapse;margin:0.5em 0 1em}th,td{border:1px solid #ccc;padding:3px 8px}",
        "th{background:#f3f3f3;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}",
        "img{max-width:100%;border:1px solid #ddd}figure{margin:1em 0}figcaption{color:#555;font-size:90%}",
        ".sw{display:inline-block;width:0.9em;height:0.9em;border:1px solid #555;margin-right:0.4em;vertical-align:-0.1em}",
        ".note{color:#555;font-size:90%}",
        "</style>",
        "</head>",
        "<body>",
        f"<h1>{e(title)}</h1>",
    ]
    if summary_rows:
        h += ["<h2>Summary</h2>", _html_table(["", "value"], summary_rows, ["l", "r"])]
    if scalar_metrics or other_metrics or nested:
        h.append("<h2>Scores against truth</h2>")
        if scalar_metrics or other_metrics:
            h.append(_html_table(["metric", "value"], scalar_metrics + other_metrics, ["l", "r"]))
        for k, table in nested.items():
            cols = list(dict.fromkeys(c for v in table.values() for c in v))
            h += [
                f"<h3>{e(_label(k))}</h3>",
                _html_table(
                    ["", *cols],
                    [[str(n), *[_num(v.get(c)) for c in cols]] for n, v in table.items()],
                    ["l"] + ["r"] * len(cols),
                ),
            ]
    if linked_images:
        h += _html_links("Maps", [(_rel(p, out), _label(k), Path(p).name) for k, p in linked_images])
        for k, p in shown:
            rel = e(_rel(p, out))
            h.append(
                f'<figure><a href="{rel}"><img src="{rel}" alt="{e(_label(k))}"></a><figcaption>{e(_label(k))}</figcaption></figure>'
            )
    if modal_rows:
        first = [
            f'<span class="sw" style="background:{e(c)}"></span>{e(r[0])}' if c else e(r[0])
            for r, c in zip(modal_rows, swatches)
        ]
        rows_html = [[f, *r[1:]] for f, r in zip(first, modal_rows)]
        h += ["<h2>Modal mineralogy</h2>", _html_table(modal_header, rows_html, modal_align, raw_first=True)]
        if note:
            h.append(f'<p class="note">{e(note)}</p>')
    for sec in sections:
        h += [f"<h2>{e(sec.title)}</h2>", _html_table(sec.header, sec.rows, sec.align)]
        h += [f'<p class="note">{e(n)}</p>' for n in sec.notes]
    if plots:
        h.append("<h2>Plots</h2>")
        for k, t in plots:
            rel = e(_rel(mineralogy[k], out))
            h.append(f'<figure><img src="{rel}" alt="{e(t)}"><figcaption>{e(t)}</figcaption></figure>')
    if data_files:
        h += _html_links("Data files", [(_rel(p, out), Path(p).name, _label(k)) for k, p in data_files])
    h += ["</body>", "</html>"]
    write_text(out / "report.html", "\n".join(h) + "\n")
    if mineralogy:  # the same tables as one workbook (mingraph.analyse.workbook)
        from mingraph.analyse.workbook import write_workbook

        write_workbook(out / "report.xlsx", mineralogy, summ, metrics)
    return md_path
