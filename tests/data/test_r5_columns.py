"""Round-5 cold attack on issue 21, column and cell decisions: each test writes its own rows of the kinds the
attack used (never the attack's files) and measures the leak with and without the defence where it can.

F-SPAN   a detected address line took no other line of its label with it
F-SPARSE a few PII rows late in a clean column: only the detected spans went, the lower-case names stayed
F-LOWER  lower-case names under ``kunde`` / ``customer`` / ``*_owner`` or a neutral header were kept
F-SHAPE  scan "shapes" printed Hebrew, Greek, Cyrillic names as they are (the auditor may scan, not reveal)
F-TEXT   text files kept every line with no finding, even where nearly every line is about a person
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from bastion.data import Label, ScopeKeys, protect_file, scan_file
from bastion.data.detectors.context import masked_shape
from bastion.data.io import iter_chunks
from bastion.data.policy import policy_from_mapping
from bastion.data.transforms import widen_spans
from bastion.errors import InvalidInput

KEYS = ScopeKeys(bytes(range(33, 65)), scope="r5-columns")


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    return path


def _column(path: Path, name: str) -> list[str]:
    return [v for chunk in iter_chunks(path) for v in chunk.data[name]]


# ---------------------------------------------------------------------------------------------- F-SPAN
_STREETS = [
    ("{n} Harbour View Road", "Portobello", "Edinburgh EH15 2AB", "United Kingdom"),
    ("Calle de Alcalá {n}, 4º B", "28009 Madrid", "España", ""),
    ("Via Giuseppe Garibaldi {n}", "16124 Genova GE", "Italia", ""),
    ("Kerkstraat {n}", "1017 GP Amsterdam", "Nederland", ""),
    ("{n} Rue de la République", "Bât. C, apt. 12", "69002 Lyon", "FRANCE"),
    ("Flat {n}, 14 Marine Drive", "Colaba", "Mumbai 400005", "India"),
    ("ul. Długa {n}/7", "80-831 Gdańsk", "Polska", ""),
    ("Plot {n}, Ring Road", "Dugbe", "Ibadan 200263", "Nigeria"),
]


_ADDRESSEES = ["Att. Henrike Voss", "c/o Adaeze Okafor", "Mr Tomasz Wiśniewski", "Dr. Ingrid Halvorsen"]


def _labels(rows: int, seed: int) -> list[str]:
    r = random.Random(seed)
    out = []
    for _ in range(rows):
        lines = [part.format(n=r.randint(2, 480)) for part in r.choice(_STREETS) if part]
        out.append("\n".join([r.choice(_ADDRESSEES), *lines]))
    return out


def test_address_block_goes_whole_with_its_detected_line(tmp_path: Path) -> None:
    """No line of a shipping label survives, detected or not; prose beside an address keeps its words."""
    labels = _labels(160, seed=5)
    notes = ["Parcel left with the neighbour, customer informed by phone yesterday evening."] * 160
    raw = _write(tmp_path / "ship.csv", ["ship_label", "notes"], [[a, b] for a, b in zip(labels, notes)])
    res = protect_file(path=raw, out=tmp_path / "out.csv", keys=KEYS, use_presidio=False)
    assert res.report.column("ship_label").label == Label.pii
    assert res.report.column("ship_label").kind == "free_text"  # span by span: the path that leaked
    out = _column(tmp_path / "out.csv", "ship_label")
    kept = [(a, b) for a, b in zip(labels, out) if any(len(line) > 3 and line in b for line in a.split("\n"))]
    assert not kept, kept[:3]
    assert _column(tmp_path / "out.csv", "notes") == notes


def test_widen_spans_block_rules() -> None:
    def show(value: str, spans: list[tuple[int, int, str]]) -> str:
        out, pos = [], 0
        for a, b, e in widen_spans(value, spans):
            out += [value[pos:a], f"<{e}>"]
            pos = b
        return "".join([*out, value[pos:]])

    label = "Henrike Voss\nAm Sandtorkai 41\n20457 Hamburg\nDeutschland"
    assert show(label, [(13, 29, "STREET_ADDRESS")]) == "<STREET_ADDRESS>"
    assert show(label, [(0, 12, "PERSON")]) == "<PERSON>"  # a name filling the first line of a label
    # A span ending inside a hyphenated word takes the whole word.
    assert show("4 Rue Saint-Honoré", [(0, 12, "STREET_ADDRESS")]) == "<STREET_ADDRESS>"
    # Sentences around the block stay; the block in the middle goes.
    note = "Customer moved house.\nNew address:\nAm Sandtorkai 41\n20457 Hamburg\n\nRefund was sent today."
    assert show(note, [(35, 51, "STREET_ADDRESS")]) == (
        "Customer moved house.\nNew address:\n<STREET_ADDRESS>\n\nRefund was sent today."
    )
    # An address inside a long sentence: only the address (whole words).
    prose = "The courier could not find Am Sandtorkai 41 so the parcel went back to the depot in the end"
    assert show(prose, [(27, 43, "STREET_ADDRESS")]) == (
        "The courier could not find <STREET_ADDRESS> so the parcel went back to the depot in the end"
    )
    # A name inside a one-line sentence is not a label line.
    assert show("I spoke to Henrike Voss today", [(11, 23, "PERSON")]) == "I spoke to <PERSON> today"
    # A secret merged into a block stays a secret (redacted, not tokenized).
    block = "Am Sandtorkai 41\nkey sk_live_x\n20457 Hamburg"
    merged = widen_spans(block, [(0, 16, "STREET_ADDRESS"), (21, 30, "SECRET")])
    assert merged == [(0, len(block), "SECRET")]


def test_policy_whole_protects_every_cell_and_excludes_prose(tmp_path: Path) -> None:
    notes = ["the parcel arrived late and the box was damaged on arrival at the depot"] * 30
    raw = _write(tmp_path / "n.csv", ["remarks"], [[n] for n in notes])
    policy = policy_from_mapping({"columns": {"remarks": {"whole": True, "label": "pii"}}})
    res = protect_file(path=raw, out=tmp_path / "o.csv", keys=KEYS, policy=policy, use_presidio=False)
    assert res.report.column("remarks").kind == "structured"
    assert all(v.startswith("tok_") for v in _column(tmp_path / "o.csv", "remarks"))
    with pytest.raises(InvalidInput, match="exclude"):
        policy_from_mapping({"columns": {"remarks": {"whole": True, "prose": True}}})
    with pytest.raises(InvalidInput, match="true or false"):
        policy_from_mapping({"columns": {"remarks": {"whole": "yes"}}})


# -------------------------------------------------------------------------------------------- F-SPARSE
_LOWER_NAMES = [
    "henrike voss",
    "tomasz wiśniewski",
    "adaeze okafor",
    "mateus carvalho",
    "ingrid halvorsen",
    "kenji morimoto",
    "farida haddad",
    "liam gallagher",
]


def test_late_pii_rows_in_a_clean_column_are_protected_whole(tmp_path: Path) -> None:
    r = random.Random(11)
    clean = ["Fits well", "Good value for money", "Delivery was quick", "Stitching came loose", "Nice colour"]
    rows = [[str(i), r.choice(clean)] for i in range(1500)]
    late = []
    for i in range(12):
        name = r.choice(_LOWER_NAMES)
        phone = f"+44 7700 900{r.randint(100, 999)}"
        late.append(name)
        rows.append([str(1500 + i), f"pls ring {name} on {phone} about the return"])
    raw = _write(tmp_path / "reviews.csv", ["id", "review"], rows)
    res = protect_file(path=raw, out=tmp_path / "o.csv", keys=KEYS, use_presidio=False)
    assert res.report.column("review").kind == "sparse"
    out = _column(tmp_path / "o.csv", "review")
    assert out[:1500] == [row[1] for row in rows[:1500]]  # the clean reviews stay
    assert not [n for n, cell in zip(late, out[1500:]) if n in cell]


# --------------------------------------------------------------------------------------------- F-LOWER
def test_lower_case_names_under_person_headers_and_neutral_headers(tmp_path: Path) -> None:
    r = random.Random(3)
    given = ["ana", "joão", "mette", "kwabena", "yusuf", "elif", "dmitri", "sofía", "haruto", "nadia"]
    family = ["pereira", "lindqvist", "asante", "yılmaz", "kuznetsov", "romero", "sato", "benali", "novak"]
    names = [f"{r.choice(given)} {r.choice(family)}" for _ in range(150)]
    products = [r.choice(["blue cotton shirt", "red wool scarf", "black leather belt", "grey denim jacket"])
                for _ in range(150)]  # fmt: skip
    # Decoys under person-role headers: one word is a yes/no, a tier or a team, not a name.
    member = [r.choice(["yes", "no"]) for _ in range(150)]
    owner = [r.choice(["payments", "search", "platform", "billing"]) for _ in range(150)]
    header = ["kunde", "customer", "email_owner", "account_contact", "who", "item", "member", "owner"]
    rows = [[n, n, n, n, n, p, m, o] for n, p, m, o in zip(names, products, member, owner)]
    raw = _write(tmp_path / "lower.csv", header, rows)
    res = protect_file(path=raw, out=tmp_path / "o.csv", keys=KEYS, use_presidio=False)
    for col in header[:5]:
        assert res.report.column(col).label == Label.pii, col
        out = _column(tmp_path / "o.csv", col)
        assert not [v for v, o in zip(names, out) if v in o], col
    for col, before in (("item", products), ("member", member), ("owner", owner)):
        assert res.report.column(col).label == Label.internal, col
        assert _column(tmp_path / "o.csv", col) == before, col


# --------------------------------------------------------------------------------------------- F-SHAPE
def test_scan_shapes_carry_no_letter_of_any_script(tmp_path: Path) -> None:
    names = [
        "אביגיל רוזנטל",
        "Παναγιώτης Κωνσταντίνου",
        "Евдокия Богданова",
        "박서연",
        "ተስፋዬ ገብረ",
        "Þórdís Guðjónsdóttir",
        "Ülkü Çağlayan",
        "ராஜேஷ் கண்ணன்",
    ] * 3
    raw = _write(tmp_path / "who.csv", ["name", "label"], [[n, f"{n}\nMain St 5\nTown"] for n in names])
    report = json.dumps(scan_file(path=raw, use_presidio=False).to_dict(), ensure_ascii=False)
    shapes = [s for c in json.loads(report)["columns"] for e in c["entities"] for s in e["shapes"]]
    assert shapes
    letters = {ch for n in names for ch in n if ch.isalpha()} - set("aA")
    assert not [s for s in shapes if set(s) & letters or "\n" in s], shapes
    assert masked_shape("Þórdís 12\u200b") == "Aa+ 99"


# ---------------------------------------------------------------------------------------------- F-TEXT
def test_text_file_about_people_fails_closed_but_a_log_does_not(tmp_path: Path) -> None:
    r = random.Random(8)
    lines = [
        f"ticket {i}: {r.choice(_LOWER_NAMES).title()} wrote from user{i}@mailbox.example" for i in range(40)
    ]
    quiet = [f"spoke with {n} about the refund" for n in _LOWER_NAMES[:4]]
    (tmp_path / "notes.txt").write_text("\n".join(lines + quiet) + "\n", encoding="utf-8")
    res = protect_file(path=tmp_path / "notes.txt", out=tmp_path / "notes.out", keys=KEYS, use_presidio=False)
    out = (tmp_path / "notes.out").read_text(encoding="utf-8")
    assert not [n for n in _LOWER_NAMES[:4] if n in out]
    assert res.undetected["text"] >= 4

    log = [f"GET /api/items/{i} 200 {r.randint(3, 90)}ms" for i in range(120)]
    log[7] = "password reset mailed to someone@mailbox.example"
    (tmp_path / "app.log").write_text("\n".join(log) + "\n", encoding="utf-8")
    protect_file(path=tmp_path / "app.log", out=tmp_path / "app.out", keys=KEYS, use_presidio=False)
    out_log = (tmp_path / "app.out").read_text(encoding="utf-8").split("\n")
    assert out_log[0] == log[0] and "someone@mailbox.example" not in out_log[7]


# ------------------------------------------------------------------------------ finding 13: what is shown
def test_scan_shows_the_action_protect_applies(tmp_path: Path) -> None:
    """A free-text column labelled secret showed ``-> drop`` while protect replaced its spans."""
    notes = [
        f"deploy with token ghp_{'x7Qa9' * 7}{i:02d}1 then ring Henrike Voss on +44 7700 900{i:03d}"
        for i in range(40)
    ]
    raw = _write(
        tmp_path / "n.csv", ["notes", "email"], [[n, f"u{i}@mailbox.example"] for i, n in enumerate(notes)]
    )
    res = protect_file(path=raw, out=tmp_path / "o.csv", keys=KEYS, use_presidio=False)
    col = res.report.column("notes")
    assert (col.label, col.kind) == (Label.secret, "free_text")
    assert {c.name: c.action for c in res.report.columns} == {p.name: p.action for p in res.plan}


def test_reveal_of_a_tampered_file_names_the_cell_and_writes_nothing(tmp_path: Path, capsys) -> None:
    from bastion.cli import EXIT_ERROR, run
    from bastion.crypto.kdf import KdfParams
    from bastion.vault import init_project

    home = tmp_path / "home"
    init_project(home=home, passphrase="correct horse battery staple", kdf=KdfParams.unsafe_fast()).close()
    raw = _write(
        tmp_path / "p.csv",
        ["name", "email"],
        [[n.title(), f"p{i}@mailbox.example"] for i, n in enumerate(_LOWER_NAMES * 3)],
    )
    safe = tmp_path / "safe.csv"
    assert run(["data", "protect", str(raw), "--out", str(safe), "--home", str(home)]) == 0
    rows = list(csv.reader(safe.open(encoding="utf-8")))
    token = rows[5][1]
    rows[5][1] = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    with (tampered := tmp_path / "tampered.csv").open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    capsys.readouterr()
    out = tmp_path / "revealed.csv"
    args = ["data", "reveal", "--file", str(tampered), "--out", str(out), "--home", str(home)]
    assert run(args) == EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "row 5, column 'email'" in err and len(err.splitlines()) == 1
    assert "mailbox.example" not in err and token not in err and not out.exists()


# --------------------------------------------------------------------------------------------- F-SPLIT
def test_value_split_across_adjacent_columns_is_protected_in_both(tmp_path: Path) -> None:
    r = random.Random(21)
    rows = []
    for i in range(120):
        ssn = f"{r.randint(101, 665)}-{r.randint(10, 99)}-{r.randint(1000, 9999)}"
        user, domain = (
            f"{r.choice(_LOWER_NAMES).replace(' ', '.')}{i}",
            r.choice(["mailbox.example", "post.example.org"]),
        )
        # Decoys beside each other: a bay number after a depot code, a quantity after a price, date parts.
        decoys = [
            f"{r.randint(10000, 99999)}",
            str(r.randint(1, 200)),
            f"{r.randint(1, 999)}.{r.randint(0, 99):02d}",
        ]
        rows.append(
            [ssn[:7], ssn[7:], user, domain, *decoys, str(r.randint(1, 9)), "2024", f"{r.randint(1, 12):02d}"]
        )
    header = ["a1", "a2", "u", "d", "depot", "bay", "price", "qty", "year", "month"]
    raw = _write(tmp_path / "split.csv", header, rows)
    res = protect_file(path=raw, out=tmp_path / "o.csv", keys=KEYS, use_presidio=False)
    for col, entity in (("a1", "US_SSN"), ("a2", "US_SSN"), ("u", "EMAIL_ADDRESS"), ("d", "EMAIL_ADDRESS")):
        report = res.report.column(col)
        assert (report.label, report.kind, report.primary_entity) == (Label.pii, "structured", entity), col
        assert all(v.startswith("tok_") for v in _column(tmp_path / "o.csv", col)), col
    for j, col in enumerate(header[4:], start=4):
        assert res.report.column(col).label != Label.pii, col
        assert _column(tmp_path / "o.csv", col) == [row[j] for row in rows], col
