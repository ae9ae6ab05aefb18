"""Text files in and out (../shared/cases 11, 17 and 21, README there): text inputs as spreadsheets
save them (encodings, delimiters, decimal commas), duplicate names refused in every user list, and
user names escaped in every output format (Markdown, HTML, CSV formula injection, plot labels)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from conftest import case

from mingraph.acquire.collection import read_class_map, read_manifest
from mingraph.acquire.dataset import open_dataset
from mingraph.acquire.formats.images import read_class_names
from mingraph.acquire.sample import open_sample
from mingraph.analyse import mineralogy as M
from mingraph.analyse.mineralogy.assay import read_assay
from mingraph.analyse.mineralogy.minerals import MineralEntry, read_mineral_list
from mingraph.analyse.report import write_report
from mingraph.cli import main
from mingraph.common.errors import InputError
from mingraph.common.escapes import csv_cell, csv_uncell, md_text
from mingraph.common.files import write_csv
from mingraph.common.textfiles import parse_number, read_json_input, read_table, sniff_delimiter


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(res, code: int = 2) -> str:
    """The output of a refused command: exit ``code``, one line, no traceback."""
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output and res.output.strip().count("\n") == 0, res.output
    return res.output


# 11: a name twice in a user list


def test_case11_mineral_list_with_a_name_twice_is_refused_naming_it(tmp_path):
    d = case("11_mineral_list_duplicate_name")
    res = run("predict", "--simulate", 64, "--minerals", d / "minerals.csv", "--out", tmp_path / "o")
    out = one_line_error(res)
    assert "'quartz' appears twice" in out and "minerals.csv" in out
    assert "line 2" in out and "line 52" in out  # both rows, as the file numbers them
    assert not (tmp_path / "o").exists()


_MINERALS_HEAD = "name,formula,density\n"


# a name twice in each kind of user list: (file, its text, its reader, the refusal)
DUPLICATE_NAMES = [
    # mineral lists: names compare as the classes are matched (case and surrounding spaces ignored)
    (
        "m1.csv",
        _MINERALS_HEAD + "Quartz,SiO2,2.65\nalbite,NaAlSi3O8,2.62\n quartz ,SiO2,1.0\n",
        read_mineral_list,
        r"' quartz '|'quartz' appears twice",
    ),
    ("m2.json", json.dumps([{"name": "pyrite"}, {"name": "PYRITE"}]), read_mineral_list, "appears twice"),
    (
        "m3.json",
        '{"minerals": [], "minerals": [{"name": "a"}]}',
        read_mineral_list,
        "'minerals' appears twice",
    ),
    (
        "m4.csv",
        "name,aliases\nquartz,qz\nsilica,qz\n",
        read_mineral_list,
        "'qz' names both 'quartz' and 'silica'",
    ),
    # class names: text, JSON list, JSON {id: name} (a name twice, an id twice)
    ("c1.txt", "quartz\nalbite\nquartz\n", read_class_names, "'quartz' appears twice"),
    ("c2.json", '["a", "b", "a"]', read_class_names, "'a' appears twice"),
    ("c3.json", '{"0": "a", "1": "a"}', read_class_names, "'a' appears twice"),
    ("c4.json", '{"1": "a", "01": "b"}', read_class_names, "id 1 appears twice"),
    ("c5.json", '{"0": "a", "0": "b"}', read_class_names, "key '0' appears twice"),
    # class maps: a key twice, in CSV (also with another delimiter) and in JSON
    (
        "k1.csv",
        "old,new\nQtz,quartz\nAb,albite\nQtz,silica\n",
        read_class_map,
        r"line 4.*'Qtz' appears twice \(also line 2\)",
    ),
    ("k2.csv", "Qtz;quartz\nQtz;quartz\n", read_class_map, "'Qtz' appears twice"),
    ("k3.json", '{"Qtz": "quartz", "Qtz": "silica"}', read_class_map, "key 'Qtz' appears twice"),
    # manifests: a column twice, a field name twice
    ("f1.csv", "bse,name,bse\na.tif,x,b.tif\n", read_manifest, "column 'bse' appears twice"),
    ("f2.csv", "bse,name\na.tif,x\nb.tif,y\nc.tif,x\n", read_manifest, "field name 'x' appears twice"),
    # assays: an element twice, also once as an oxide
    ("a1.csv", "element,wt_pct\nFe,10\nSi,5\nFe,2\n", read_assay, "Fe is given twice"),
    ("a2.csv", "element,wt_pct\nFe,10\nFe2O3,2\n", read_assay, r"Fe is given twice \(as 'Fe' and 'Fe2O3'\)"),
]


@pytest.mark.parametrize("name, text, reader, match", DUPLICATE_NAMES, ids=[c[0] for c in DUPLICATE_NAMES])
def test_every_user_list_refuses_a_name_twice(tmp_path, name, text, reader, match):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(InputError, match=match):
        reader(p)


def test_what_is_not_a_duplicate_stays_accepted(tmp_path):
    """An alias equal to its own name, names that differ only in case where names are exact."""
    (tmp_path / "ok.csv").write_text("name,aliases\nquartz,Quartz;qz\nalbite,ab\n")
    assert [e.name for e in read_mineral_list(tmp_path / "ok.csv")] == ["quartz", "albite"]
    (tmp_path / "ok.txt").write_text("a\nb\nA\n")  # class names are exact: 'a' and 'A' are two classes
    assert read_class_names(tmp_path / "ok.txt") == ["a", "b", "A"]


# 17: manifests (and every other text input) as spreadsheets save them


def test_case17_manifests_saved_by_excel(tmp_path):
    d = case("17_manifest_from_excel")
    # ';' with decimal commas: the rows are read (the fields' files do not exist: one line naming the first)
    fields = read_manifest(d / "semi.csv")
    assert [f.name for f in fields] == ["Feld 1", "Feld 2"] and [f.pixel_size_um for f in fields] == [
        0.8,
        0.8,
    ]
    assert (
        fields[0].bse == d / "Probe Ä 1" / "feld 1 µm.tif"
        and fields[1].points == d / "Probe Ä 1" / "punkte 2.npz"
    )
    out = one_line_error(run("import", tmp_path / "a", "--manifest", d / "semi.csv"))
    assert "Probe Ä 1/feld 1 µm.tif" in out and "not found" in out
    # a UTF-8 byte-order mark (Excel's "CSV UTF-8") is not part of the first column's name
    fields = read_manifest(d / "bom.csv")
    assert [f.name for f in fields] == ["Feld 1", "Feld 2"] and fields[0].pixel_size_um == 1.0
    assert fields[0].bse == d / "Probe Ä 1" / "feld 1 µm.tif"
    out = one_line_error(run("import", tmp_path / "b", "--manifest", d / "bom.csv"))
    assert "\ufeff" not in out and "feld 1 µm.tif" in out and "not found" in out
    # Latin-1 (Excel's plain "CSV" on Windows) is refused in one line naming the file and UTF-8
    out = one_line_error(run("import", tmp_path / "c", "--manifest", d / "latin1.csv"))
    assert "latin1.csv" in out and "not UTF-8" in out and "line 2" in out
    assert not any(tmp_path.iterdir())


def _field_files(d, stem: str, value: int):
    tifffile.imwrite(d / f"{stem}.tif", np.full((3, 4), 1000 * (value + 1), np.uint16))
    tifffile.imwrite(d / f"{stem}_lab.tif", np.full((3, 4), value, np.uint16))


def test_a_manifest_imports_the_same_however_a_spreadsheet_saved_it(tmp_path):
    _field_files(tmp_path, "f ä", 0)
    _field_files(tmp_path, "g", 1)
    rows = [["bse", "labels", "pixel_size", "name"], ["f ä.tif", "f ä_lab.tif", "0.25", "Feld ä"]]
    rows += [["g.tif", "g_lab.tif", "0.25", "zwei"]]
    variants = {
        "plain": (",", "utf-8", "\n", "0.25"),
        "excel_utf8": (",", "utf-8-sig", "\r\n", "0.25"),
        "excel_de": (";", "utf-8-sig", "\r\n", "0,25"),
        "tab": ("\t", "utf-8", "\n", "0,25"),
    }
    for key, (delim, enc, eol, px) in variants.items():
        text = eol.join(delim.join(px if c == "0.25" else c for c in r) for r in rows) + eol
        (tmp_path / f"{key}.csv").write_bytes(text.encode(enc))
        res = run("import", tmp_path / key, "--manifest", tmp_path / f"{key}.csv")
        assert res.exit_code == 0, (key, res.output)
        ds = open_dataset(tmp_path / key)
        assert ds.tile_ids == ["Feld ä", "zwei"], key
        assert [ds.field(i).pixel_size_um for i in range(2)] == [0.25, 0.25], key
        assert np.array_equal(ds.field(1).labels, np.ones((3, 4))), key
    # other encodings: refused, naming the file and UTF-8
    text = "\n".join(",".join(r) for r in rows) + "\n"
    for enc, says in (
        ("cp1252", "not UTF-8"),
        ("latin-1", "not UTF-8"),
        ("utf-16", "UTF-16"),
        ("utf-32", "UTF-32"),
        ("utf-16-le", "not UTF-8"),
    ):
        (tmp_path / f"{enc}.csv").write_bytes(text.encode(enc))
        out = one_line_error(run("import", tmp_path / f"ds_{enc}", "--manifest", tmp_path / f"{enc}.csv"))
        assert f"{enc}.csv: encoding" in out and says in out and "UTF-8" in out, out
    (tmp_path / "ascii16.csv").write_bytes("bse,name\na.tif,a\n".encode("utf-16-le"))  # no BOM: NUL bytes
    out = one_line_error(run("import", tmp_path / "ds_ascii16", "--manifest", tmp_path / "ascii16.csv"))
    assert "ascii16.csv: encoding: NUL bytes" in out and "UTF-8" in out
    # a ';' row in a ',' file: more cells than the header says, refused naming the line and delimiter
    (tmp_path / "mixed.csv").write_text("bse,labels,name\nf ä.tif,f ä_lab.tif,a\ng.tif;g_lab.tif;b,x,y,z\n")
    out = one_line_error(run("import", tmp_path / "ds_mixed", "--manifest", tmp_path / "mixed.csv"))
    assert "line 3" in out and "4 cells but the header has 3 columns" in out


def test_a_sample_manifest_reads_stage_positions_with_decimal_commas(tmp_path):
    for stem in "ab":
        tifffile.imwrite(tmp_path / f"{stem}.tif", np.zeros((4, 4), np.uint16))
        np.savez(tmp_path / f"{stem}.npz", rc=np.zeros((1, 2), int), spectra=np.zeros((1, 3000)))
    head = "bse;points;pixel_size;name;stage_x_um;stage_y_um\r\n"
    (tmp_path / "m.csv").write_text(
        head + "a.tif;a.npz;0,5;a;0;0\r\nb.tif;b.npz;0,5;b;2;-1,5\r\n", encoding="utf-8-sig"
    )
    s = open_sample(tmp_path / "m.csv")
    # by hand: 0.5 µm pixels; b is 2 µm right (4 columns) and 1.5 µm lower (y up: 3 rows down)
    assert s.pixel_size_um == 0.5 and s.positioned
    assert [(f.name, f.origin_px) for f in s.fields] == [("a", (0, 0)), ("b", (3, 4))]
    (tmp_path / "bad.csv").write_text(head + "a.tif;a.npz;0,5;a;0;0\r\nb.tif;b.npz;0,5;b;2;-1.5,0\r\n")
    with pytest.raises(
        InputError, match="bad.csv: line 3: stage_y_um: expected a number in µm; got '-1.5,0'"
    ):
        open_sample(tmp_path / "bad.csv")


def test_decimal_commas_only_where_unambiguous():
    assert parse_number("2,65", ";") == 2.65 and parse_number(" -0,5 ", ";") == -0.5
    assert parse_number("1,5e3", ";") == 1500.0 and parse_number("1,234", ";") == 1.234  # ';' locales
    assert parse_number("2,65", "\t") == 2.65
    assert parse_number("2.65", ";") == 2.65 and parse_number("7", ",") == 7.0
    for text, delim, says in (
        ("1,234", "\t", "ambiguous"),  # 1.234 or 1234?
        ("2,65", ",", "comma is the delimiter"),
        ("2,65", None, "decimal comma"),  # JSON: numbers are numbers
        ("1.234,5", ";", "decimal comma"),
        ("1,2,3", ";", "decimal comma"),
        ("abc", ";", "'abc'"),
        ("", ";", "''"),
    ):
        with pytest.raises(ValueError, match=says):
            parse_number(text, delim)


def test_the_delimiter_is_sniffed_among_comma_semicolon_and_tab():
    assert sniff_delimiter("bse;points;pixel_size\na.tif;a.npz;0,8\n") == ";"
    assert sniff_delimiter("a\tb\n1,5\t2\n") == "\t"
    # ';' inside cells of a ',' file (mineral aliases) does not fool it, nor a quoted ',' in a ';' file
    assert sniff_delimiter("name,formula,aliases\nquartz,SiO2,qz;silica\nalbite,NaAlSi3O8,ab;alb\n") == ","
    assert sniff_delimiter('name;density\n"a, b";2,6\nc;3,1\n') == ";"
    assert sniff_delimiter("name\nquartz\nalbite\n") == ","  # one column
    assert sniff_delimiter("bse;name\n") == ";"  # a header alone


def test_every_text_input_takes_a_bom_semicolons_and_decimal_commas(tmp_path):
    bom = "\ufeff"
    (tmp_path / "m.csv").write_text(bom + 'name;formula;density;aliases\r\nquartz;SiO2;2,65;"qz;silica"\r\n')
    [q] = read_mineral_list(tmp_path / "m.csv")
    assert (q.name, q.density, q.aliases) == ("quartz", 2.65, ("qz", "silica"))
    (tmp_path / "a.csv").write_text(bom + "element\twt_pct\nFe\t12,5\nSi\t3\n")
    assert read_assay(tmp_path / "a.csv") == {"Fe": 12.5, "Si": 3.0}
    (tmp_path / "c.txt").write_text(bom + "quartz\r\nalbite\r\n")
    assert read_class_names(tmp_path / "c.txt") == ["quartz", "albite"]
    (tmp_path / "c.json").write_text(bom + '["quartz", "albite"]')
    assert read_class_names(tmp_path / "c.json") == ["quartz", "albite"]
    (tmp_path / "k.csv").write_text(bom + "old;new\nQtz;quartz\n")
    assert read_class_map(tmp_path / "k.csv") == {"Qtz": "quartz"}
    # the reader's table: blank lines skipped, short rows padded, line numbers as in the file
    (tmp_path / "t.csv").write_text("a;b;c\n\n1;2\n;;\n4;5;6\n")
    t = read_table(tmp_path / "t.csv", "t")
    assert t.header == ["a", "b", "c"] and t.delimiter == ";" and t.lines == [3, 5]
    assert t.rows == [{"a": "1", "b": "2", "c": ""}, {"a": "4", "b": "5", "c": "6"}]
    with pytest.raises(InputError, match="t.csv: line 2: b: expected µm; got 'x'"):
        (tmp_path / "t.csv").write_text("a;b\n1;x\n")
        read_table(tmp_path / "t.csv", "t").number(0, "b", "µm")
    for enc, name in (("latin-1", "m"), ("utf-16", "a")):
        (tmp_path / f"bad_{name}.csv").write_bytes("name,density\nBaryt Ä,4.5\n".encode(enc))
    with pytest.raises(InputError, match="bad_m.csv: encoding: not UTF-8"):
        read_mineral_list(tmp_path / "bad_m.csv")
    with pytest.raises(InputError, match="bad_a.csv: encoding: the file is UTF-16"):
        read_assay(tmp_path / "bad_a.csv")
    (tmp_path / "p.json").write_bytes(b'{"a": 1,\n "b": }')
    with pytest.raises(InputError, match="invalid JSON .* line 2 column 7"):
        read_json_input(tmp_path / "p.json", "params")


# 21: names escaped in every output format


def test_case21_report_md_carries_names_as_inert_text(tmp_path):
    d = case("21_report_md_raw_html")
    res = run("predict", "--simulate", 64, "--minerals", d / "minerals.csv", "--out", tmp_path / "o")
    assert res.exit_code == 0, res.output
    md = (tmp_path / "o" / "report.md").read_text()
    html = (tmp_path / "o" / "report.html").read_text()
    for text in (md, html):
        assert "<img src=x" not in text and "<script" not in text
    assert "| &lt;img src=x onerror=alert(document.domain)&gt; |" in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # the CSV tables keep the names exactly (nothing there for a spreadsheet to run)
    with open(tmp_path / "o" / "mineralogy" / "modal.csv", newline="") as f:
        names = {r["phase"] for r in csv.DictReader(f)}
    assert {"<img src=x onerror=alert(document.domain)>", "<script>alert(1)</script>"} <= names


def test_markdown_escape_worked_by_hand():
    assert md_text("<b>x</b> & y") == "&lt;b&gt;x&lt;/b&gt; &amp; y"
    assert md_text("*a* _b_ `c` [d](e) ![f](g)") == r"\*a\* \_b\_ \`c\` \[d\](e) !\[f\](g)"
    assert md_text("a|b\nc") == r"a\|b c" and md_text("~~s~~ $x$ {:x} #1") == r"\~\~s\~\~ \$x\$ \{:x\} \#1"
    assert md_text("back\\slash") == "back\\\\slash"
    # at the start of a line: no list, quote, heading or rule; numbers as text are left alone
    assert (
        md_text("- a", True) == r"\- a"
        and md_text("+ a", True) == r"\+ a"
        and md_text("= =", True) == r"\= ="
    )
    assert md_text("12. a", True) == r"12\. a" and md_text("3) a", True) == r"3\) a"
    assert md_text("12.5 % of", True) == "12.5 % of" and md_text("- a") == "- a"  # a table cell
    assert md_text("> q", True) == "&gt; q"


def test_csv_cells_that_a_spreadsheet_would_run_get_a_quote(tmp_path):
    rows = [
        ["name", "value"],
        ['=HYPERLINK("http://x","y")', -1.5],
        ["+cmd|' /C calc'!A0", 3],
        ["-2+3", "-2"],
        ["@SUM(A1)", 0],
        ["\tx", "+1e3"],
        ["\rx", "-inf"],
        ["'=x", "'x"],
        ["plain", "-"],
    ]
    write_csv(tmp_path / "t.csv", rows)
    with open(tmp_path / "t.csv", newline="") as f:
        got = list(csv.reader(f))
    assert got == [
        ["name", "value"],
        ['\'=HYPERLINK("http://x","y")', "-1.5"],  # numbers stay numbers
        ["'+cmd|' /C calc'!A0", "3"],
        ["'-2+3", "-2"],  # text that is a number stays as it is
        ["'@SUM(A1)", "0"],
        ["'\tx", "+1e3"],
        ["'\nx", "-inf"],  # a CR written as LF (a bare CR would end the row)
        ["''=x", "'x"],  # one more quote, so that the escape can be undone
        ["plain", "'-"],
    ]
    # mingraph's reader gives back exactly the text written
    t = read_table(tmp_path / "t.csv", "t")
    assert [[r["name"], r["value"]] for r in t.rows] == [
        [str(c).replace("\r", "\n") for c in r] for r in rows[1:]
    ]
    for r in rows[1:]:
        assert csv_uncell(csv_cell(r[0])) == r[0].replace("\r", "\n")


def test_names_from_a_mineral_list_are_safe_in_every_mineralogy_output(tmp_path):
    names = ["=cmd|' /C calc'!A0", "-x", "$x^$ <b>"]
    lab = np.zeros((20, 20), int)
    lab[:, 8:] = 1
    lab[12:, 12:] = 2
    valid = np.ones(lab.shape, bool)
    mineral = M.write_mineralogy(
        tmp_path / "min", lab, valid, names, [2.6, 3.0, 5.0], 1.0
    )  # "$x^$": no parse error
    assert mineral["modal_png"].is_file() and mineral["association_png"].is_file()
    for key, col in (("modal_csv", "phase"), ("grains_csv", "phase"), ("grain_summary_csv", "phase")):
        with open(mineral[key], newline="") as f:
            cells = {r[col] for r in csv.DictReader(f)}
        assert {"'=cmd|' /C calc'!A0", "'-x", "$x^$ <b>"} <= cells, key
    with open(mineral["association_csv"], newline="") as f:
        header = next(csv.reader(f))
    assert "'=cmd|' /C calc'!A0" in header and "=cmd|' /C calc'!A0" not in header
    # the report shows the names as they are (the CSV escape undone, then Markdown / HTML escaped)
    write_report(tmp_path, mineralogy=mineral)
    md, html = (tmp_path / "report.md").read_text(), (tmp_path / "report.html").read_text()
    assert "| =cmd\\|' /C calc'!A0 |" in md and "| -x |" in md and "| \\$x^\\$ &lt;b&gt; |" in md
    assert ">=cmd|&#x27; /C calc&#x27;!A0</" in html and "$x^$ &lt;b&gt;" in html and "<b>" not in html
    # a mineral list written by mingraph's CSV writer (formula-like names escaped) reads back the same
    entries = [MineralEntry("=a", "SiO2", 2.65), MineralEntry("+b", None, None, "#ff0000", ("-c",))]
    rows = [["name", "formula", "density", "colour", "aliases"]]
    rows += [["=a", "SiO2", "2.65", "", ""], ["+b", "", "", "#ff0000", "-c"]]
    write_csv(tmp_path / "list.csv", rows)
    assert read_mineral_list(tmp_path / "list.csv") == entries
