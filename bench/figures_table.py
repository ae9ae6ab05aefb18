"""Print the bench figures that ``MINGRAPH_BENCH_JSON=FILE`` collected (bench/figures.py) as a table.

    python bench/figures_table.py FILE

One row a figure, in the order they were recorded: our value, the peer's in the same run, the
ratio the bench asserts (``peer/value``: times faster or smaller than the peer; ``value/peer``:
our cost relative to it), its floor (≥) or ceiling (≤), whether it held, and the 1-minute load
when it was measured.  Above the table: the dates, machines and commits of the lines.  Exit
status 0 (the benches' own exit status says whether they passed); 2 when FILE is missing.
"""

from __future__ import annotations

import json
import sys

UNITS = {"B": [(1e9, "GB"), (1e6, "MB"), (1e3, "kB"), (1, "B")], "s": [(1, "s"), (1e-3, "ms"), (1e-6, "µs")]}


def fmt(x: float | None, unit: str = "") -> str:
    """``x`` with 4 significant digits, bytes and seconds in a readable multiple."""
    if x is None:
        return "-"
    for scale, name in UNITS.get(unit, []):
        if abs(x) >= scale:
            return f"{x / scale:.4g} {name}"
    return f"{x:.4g}" + (f" {unit}" if unit else "")


def read(path: str) -> tuple[list[dict], int]:
    """The figures of ``path`` and how many of its lines were not JSON (a torn or foreign line)."""
    rows, bad = [], 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                bad += 1
    return rows, bad


def table(rows: list[dict]) -> str:
    head = ["figure", "value", "peer", "peer value", "ratio", "bound", "ok", "load"]
    body = []
    for r in rows:
        unit = r.get("unit", "")
        bunit = unit if r.get("ratio") is None else ""  # without a peer the bound is on the value
        bounds = [f">= {fmt(r['floor'], bunit)}"] * (r.get("floor") is not None)
        bounds += [f"<= {fmt(r['ceiling'], bunit)}"] * (r.get("ceiling") is not None)
        bound = ", ".join(bounds) or "-"
        ratio = "-" if r.get("ratio") is None else f"{fmt(r['ratio'])} ({r.get('ratio_is')})"
        ok = "-" if bound == "-" else ("yes" if r.get("ok") else "NO")
        load = r.get("load")
        body.append(
            [
                r.get("name", "?"),
                fmt(r.get("value"), unit),
                r.get("peer") or "-",
                fmt(r.get("peer_value"), unit) if r.get("peer") else "-",
                ratio,
                bound,
                ok,
                f"{load[0]:.2f}" if load else "-",
            ]
        )
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]
    numeric = {1, 3, 4, 7}

    def line(cells):
        return "  ".join(
            str(c).rjust(w) if i in numeric else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, body)])


def summary(rows: list[dict], bad: int) -> str:
    def distinct(key, f=lambda x: x):
        return sorted({str(f(r[key])) for r in rows if r.get(key) is not None})

    dates = distinct("date")
    machines = sorted({f"{r.get('cpu')}, {r.get('cores')} cores" for r in rows})
    failed = sum(
        1 for r in rows if (r.get("floor") is not None or r.get("ceiling") is not None) and not r["ok"]
    )
    lines = [
        f"{len(rows)} bench figures, {failed} outside their bounds"
        + (f"; {bad} unreadable line(s) skipped" if bad else ""),
        "date:    " + (f"{dates[0]} .. {dates[-1]}" if len(dates) > 1 else (dates or ["-"])[0]),
        "machine: " + "; ".join(machines),
        "commit:  " + ", ".join(distinct("commit") or ["-"]),
    ]
    loads = [r["load"][0] for r in rows if r.get("load")]
    if loads:
        lines.append(f"load:    1-min load average {min(loads):.2f} .. {max(loads):.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    try:
        rows, bad = read(argv[0])
    except FileNotFoundError:
        print(f"no bench figures: {argv[0]} does not exist", file=sys.stderr)
        return 2
    if not rows:
        print(f"no bench figures in {argv[0]}")
        return 0
    print(summary(rows, bad) + "\n\n" + table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
