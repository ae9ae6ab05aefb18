"""Report sections for the process-mineralogy tables: assay, deportment, liberation, locking.

Each section is read back from the CSVs that :func:`mingraph.analyse.mineralogy.write_mineralogy`
wrote (so the report shows exactly what the files hold) and returned as plain rows of strings for
:mod:`mingraph.analyse.report` to render as Markdown and HTML.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mingraph.analyse.report_csv import parse_float, read_rows


@dataclass
class Section:
    """A titled table (rows of strings, ``align`` per column: "l" or "r") and notes under it."""

    title: str
    header: list[str]
    rows: list[list[str]]
    align: list[str]
    notes: list[str] = field(default_factory=list)


_read = read_rows
_f = parse_float


def _ci(row: Mapping[str, str], value: str, digits: int = 2) -> str:
    v = _f(row.get(value))
    if v is None:
        return "-"
    lo, hi = _f(row.get("ci_low")), _f(row.get("ci_high"))
    s = f"{v:.{digits}f}"
    return s if lo is None or hi is None else f"{s} ({lo:.{digits}f}–{hi:.{digits}f})"


def assay_section(files: Mapping[str, Any], min_json: Mapping[str, Any]) -> Section | None:
    rows = [
        r
        for r in _read(files.get("assay_csv"))
        if (_f(r["calculated_wt_pct"]) or 0) > 0 or r["measured_wt_pct"]
    ]
    if not rows:
        return None
    measured = any(r["measured_wt_pct"] for r in rows)
    header = ["element", "calculated wt % (95 % interval)"] + (
        ["measured wt %", "calc − measured"] if measured else []
    )
    out = []
    for r in rows:
        row = [r["element"], _ci(r, "calculated_wt_pct", 3)]
        if measured:
            m, d = _f(r["measured_wt_pct"]), _f(r["difference_wt_pct"])
            row += ["-" if m is None else f"{m:.3f}", "-" if d is None else f"{d:+.3f}"]
        out.append(row)
    ml = min_json.get("mineral_list", {})
    notes = [
        "Calculated from mass % × the element's mass fraction in each mineral's formula (xraylib); "
        f"the minerals with a density and a formula cover {min_json.get('assay_covers_mass_pct', 0):.1f} % of the mass."
    ]
    for key, what in (
        ("not_in_list", "not in the mineral list"),
        ("no_density", "without a density"),
        ("no_formula", "without a formula"),
    ):
        if ml.get(key):
            notes.append(f"Classes {what} (left out, never guessed): {', '.join(ml[key])}.")
    return Section("Calculated assay", header, out, ["l"] + ["r"] * (len(header) - 1), notes)


def deportment_section(files: Mapping[str, Any], most: int = 3) -> Section | None:
    """Each element with its main carriers (the ``most`` minerals holding the largest shares)."""
    rows = _read(files.get("deportment_csv"))
    if not rows:
        return None
    phases = [c for c in rows[0] if c != "element"]
    out = []
    for r in rows:
        share = sorted(((_f(r[p]) or 0.0, p) for p in phases), reverse=True)
        main = [f"{p} {v:.1f}" for v, p in share[:most] if v >= 0.05]
        rest = sum(v for v, _ in share[most:])
        out.append([r["element"], ", ".join(main) + (f"; others {rest:.1f}" if rest >= 0.05 else "")])
    notes = ["% of each element carried by each mineral (every mineral in deportment.csv)."]
    return Section(
        "Element deportment (main carriers, % of the element)",
        ["element", "carried by"],
        out,
        ["l", "l"],
        notes,
    )


def _interval_note(min_json: Mapping[str, Any]) -> str:
    b = min_json.get("bootstrap", {})
    if b.get("unit") != "particles":
        return f"No interval: too few particles ({min_json.get('n_particles', 0)}) to resample."
    return f"Intervals: bootstrap over {b.get('units')} particles, {b.get('replicates')} replicates."


def liberation_sections(files: Mapping[str, Any], min_json: Mapping[str, Any]) -> list[Section]:
    rows = _read(files.get("liberation_csv"))
    targets = min_json.get("targets", [])
    if not rows or not targets or int(min_json.get("n_particles", 0)) < 2:
        return []  # one particle (a section without resin): liberation says nothing
    classes = list(dict.fromkeys(r["liberation_class"] for r in rows))
    out = []
    for basis, label in (("composition", "area % of the particle"), ("free_surface", "free surface %")):
        cols = {
            t: [r for r in rows if r["phase"] == t and r["basis"] == basis and r["size_class"] == "all"]
            for t in targets
        }
        cols = {t: v for t, v in cols.items() if len(v) == len(classes)}
        table = [[f"class {c}", *[_ci(cols[t][i], "pct", 1) for t in cols]] for i, c in enumerate(classes)]
        out.append(
            Section(
                f"Liberation by {label} (% of the mineral, 95 % interval)",
                ["class (%)", *cols],
                table,
                ["l"] + ["r"] * len(cols),
                ["Per particle-size class in liberation.csv. " + _interval_note(min_json)],
            )
        )
    # by size for the first target
    t = targets[0]
    sel = [r for r in rows if r["phase"] == t and r["basis"] == "composition" and r["size_class"] != "all"]
    sizes = list(dict.fromkeys(r["size_class"] for r in sel))
    table = [
        [s, *[f"{_f(r['pct']) or 0:.1f}" for r in sel if r["size_class"] == s]]
        for s in sizes
        if any((_f(r["target_px"]) or 0) > 0 for r in sel if r["size_class"] == s)
    ]
    if table:
        out.append(
            Section(
                f"Liberation of {t} by particle size (ECD µm; % of the mineral in the size class)",
                ["size (µm)", *classes],
                table,
                ["l"] + ["r"] * len(classes),
            )
        )
    return out


def locking_section(files: Mapping[str, Any], min_json: Mapping[str, Any]) -> Section | None:
    if int(min_json.get("n_particles", 0)) < 2:
        return None
    rows = [r for r in _read(files.get("locking_csv")) if r["phase"] in min_json.get("targets", [])]
    rows = [r for r in rows if (_f(r["pct"]) or 0) > 0]
    if not rows:
        return None
    table = [[r["locking"], r["phase"], _ci(r, "pct", 1)] for r in rows]
    return Section(
        "Locking (% of the mineral, 95 % interval)",
        ["where", "phase", "%"],
        table,
        ["l", "l", "r"],
        [
            "Binary: the particle holds the mineral and one other phase; ternary: two others; complex: three or more."
        ],
    )


def grade_recovery_section(files: Mapping[str, Any], min_json: Mapping[str, Any]) -> Section | None:
    """Grade of the concentrate at a few recoveries, per target (the whole curve in grade_recovery.csv)."""
    if int(min_json.get("n_particles", 0)) < 2:
        return None
    rows = [r for r in _read(files.get("grade_recovery_csv")) if r["phase"] in min_json.get("targets", [])]
    at = ("50", "70", "80", "90", "95")
    table = []
    for t in min_json.get("targets", []):
        sel = {r["recovery_pct"].split(".")[0]: r for r in rows if r["phase"] == t}
        if sel:
            table.append([t, *[_ci(sel[a], "grade_pct", 1) if a in sel else "-" for a in at]])
    if not table:
        return None
    basis = rows[0]["basis"] if rows else "mass"
    return Section(
        f"Theoretical grade–recovery ({basis} % of the mineral in the concentrate, 95 % interval)",
        ["phase", *[f"at {a} % recovery" for a in at]],
        table,
        ["l"] + ["r"] * len(at),
        ["Particles taken richest first (a perfect separation of the particles measured)."],
    )


def process_sections(files: Mapping[str, Any], min_json: Mapping[str, Any]) -> list[Section]:
    """All process-mineralogy sections that have data, in report order."""
    out: list[Section | None] = [assay_section(files, min_json), deportment_section(files)]
    out += liberation_sections(files, min_json)
    out.append(locking_section(files, min_json))
    out.append(grade_recovery_section(files, min_json))
    return [s for s in out if s is not None]
