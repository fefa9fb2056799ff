"""protect on every format: no raw PII value survives; bad inputs fail with one error and no output."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bastion.data import Action, Label, ScopeKeys, assess_risk, protect_file, reveal_text, scan_file
from bastion.data.io import iter_chunks
from bastion.data.policy import policy_from_mapping
from bastion.data.synth import COLUMNS, generate_table, generate_text
from bastion.errors import InvalidInput

KEYS = ScopeKeys(bytes(range(32)), scope="test")


@pytest.fixture(scope="module")
def table():
    return generate_table(rows=400, seed=21)


def _leaks(text: str, values) -> list[str]:
    return [v for v in values if v in text]


def test_attack_reading_raw_file_finds_pii_but_not_after_protect(tmp_path: Path, table) -> None:
    raw = table.write_csv(tmp_path / "raw.csv")
    # The "attack": grep the file for every raw PII value the generator planted.
    assert len(_leaks(raw.read_text(), table.pii_values)) == len(table.pii_values)
    res = protect_file(path=raw, out=tmp_path / "out.csv", keys=KEYS, chunk_rows=128, use_presidio=False)
    out = (tmp_path / "out.csv").read_text()
    assert _leaks(out, table.pii_values) == []
    assert res.rows == 400 and res.input_digest != res.output_digest
    plan = {p.name: p.action for p in res.plan}
    assert plan["email"] is Action.tokenize and plan["api_token"] is Action.drop
    assert plan["zip"] is Action.generalize and plan["amount"] is Action.keep
    assert "api_token" not in out.splitlines()[0]
    # Re-scanning the protected output finds no direct identifiers any more.
    rescan = scan_file(path=tmp_path / "out.csv", use_presidio=False)
    for col in rescan.columns:
        assert col.label in (Label.internal, Label.confidential), (col.name, col.entities)


def test_tokens_are_consistent_across_files_and_reveal(tmp_path: Path, table) -> None:
    raw = table.write_csv(tmp_path / "raw.csv")
    protect_file(path=raw, out=tmp_path / "a.csv", keys=KEYS, use_presidio=False)
    protect_file(path=raw, out=tmp_path / "b.csv", keys=KEYS, use_presidio=False)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    revealed, count = reveal_text((tmp_path / "a.csv").read_text(), keys=KEYS)
    assert count > 0
    email = table.rows[0][COLUMNS.index("email")]
    assert email in revealed and email not in (tmp_path / "a.csv").read_text()


def test_policy_fpe_mask_hash(tmp_path: Path, table) -> None:
    raw = table.write_csv(tmp_path / "raw.csv")
    pol = policy_from_mapping(
        {
            "columns": {
                "card_number": {"action": "fpe"},
                "phone": {"action": "mask"},
                "email": {"action": "hash"},
                "api_token": {"action": "redact"},
            }
        }
    )
    protect_file(path=raw, out=tmp_path / "o.csv", keys=KEYS, policy=pol, use_presidio=False)
    rows = next(iter(iter_chunks(tmp_path / "o.csv"))).data
    for before, after in zip(
        (r[COLUMNS.index("card_number")] for r in table.rows), rows["card_number"], strict=True
    ):
        assert after != before and len(after) == len(before)
        assert KEYS.fpe_reveal(after) == before
    assert all(v.startswith("hmac_") for v in rows["email"])
    assert all(v == "[SECRET]" for v in rows["api_token"])
    assert all(set(v[:-4]) <= set("*() +-.") for v in rows["phone"])
    assert _leaks((tmp_path / "o.csv").read_text(), table.pii_values) == []


def test_jsonl_and_parquet_and_text(tmp_path: Path, table) -> None:
    jl = tmp_path / "raw.jsonl"
    with jl.open("w") as fh:
        for i, row in enumerate(table.rows):
            obj = dict(zip(COLUMNS, row, strict=True))
            obj["id"] = i  # a non-string value kept as is
            obj["meta"] = {"nested": True}
            fh.write(json.dumps(obj) + "\n")
    protect_file(path=jl, out=tmp_path / "out.jsonl", keys=KEYS, use_presidio=False)
    text = (tmp_path / "out.jsonl").read_text()
    assert _leaks(text, table.pii_values) == []
    first = json.loads(text.splitlines()[0])
    assert first["id"] == 0 and first["meta"] == {"nested": True} and "api_token" not in first

    pqf = tmp_path / "raw.parquet"
    cols = {c: [r[j] for r in table.rows] for j, c in enumerate(COLUMNS)}
    cols["amount"] = [float(v) for v in cols["amount"]]
    pq.write_table(pa.table(cols), pqf, row_group_size=100)
    protect_file(path=pqf, out=tmp_path / "out.parquet", keys=KEYS, chunk_rows=150, use_presidio=False)
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.num_rows == 400 and out.schema.field("amount").type == pa.float64()
    flat = json.dumps(out.to_pylist())
    assert _leaks(flat, table.pii_values) == []

    corpus = generate_text(lines=300, seed=22)
    txt = corpus.write(tmp_path / "notes.txt")
    protect_file(path=txt, out=tmp_path / "notes.out.txt", keys=KEYS, use_presidio=False)
    prot = (tmp_path / "notes.out.txt").read_text()
    assert _leaks(prot, corpus.pii_values) == []
    assert len(prot.splitlines()) == 300


def _bad_inputs(tmp_path: Path) -> dict[str, Path]:
    files = {}
    (p := tmp_path / "ragged.csv").write_text("a,b\n1,2\n3,4,5\n")
    files["ragged"] = p
    (p := tmp_path / "quote.csv").write_text('a,b\n1,"x"y\n')
    files["quote"] = p
    (p := tmp_path / "latin1.csv").write_bytes("name,city\nJos\xe9,K\xf6ln\n".encode("latin-1"))
    files["encoding"] = p
    (p := tmp_path / "long.csv").write_bytes(b"a,b\n" + b"x" * (10 * 1024 * 1024) + b",1\n")
    files["long line"] = p
    (p := tmp_path / "blob.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    files["binary"] = p
    (p := tmp_path / "bad.jsonl").write_text('{"a": 1}\n{"a": \n')
    files["json"] = p
    (p := tmp_path / "bad.parquet").write_bytes(b"PAR1 not really parquet")
    files["parquet"] = p
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"notes": ["ok", "x " * (1 << 20)]}), p := tmp_path / "huge-cell.parquet")
    files["parquet cell over the cap"] = p
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"name": ["Jane Doe"] * 2000}), good, row_group_size=100)
    (p := tmp_path / "truncated.parquet").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    files["truncated parquet"] = p
    (p := tmp_path / "multiline.csv").write_text('a,b\n"' + "line\n" * 250_000 + '",1\n')
    files["quoted cell over the cap"] = p
    (p := tmp_path / "empty.csv").write_bytes(b"")
    files["empty"] = p
    return files


def test_bad_inputs_fail_cleanly_with_no_partial_output(tmp_path: Path) -> None:
    for kind, path in _bad_inputs(tmp_path).items():
        out = tmp_path / f"out-{path.name}"
        with pytest.raises(InvalidInput) as info:
            protect_file(path=path, out=out, keys=KEYS, use_presidio=False)
        assert "\n" not in str(info.value), kind
        if "over the cap" in kind:
            assert "longer than" in str(info.value), kind
        assert not out.exists(), kind
        assert not list(tmp_path.glob(f".out-{path.name}*")), kind  # no temp file left behind


def test_failure_mid_stream_leaves_no_output(tmp_path: Path, table) -> None:
    raw = table.write_csv(tmp_path / "raw.csv")
    with raw.open("a") as fh:
        fh.write("1,2,3\n")  # ragged row after 400 good ones: found in the second pass's last chunk
    pol = policy_from_mapping({})
    with pytest.raises(InvalidInput):
        protect_file(
            path=raw, out=tmp_path / "o.csv", keys=KEYS, policy=pol, chunk_rows=50, use_presidio=False
        )
    assert not (tmp_path / "o.csv").exists()


def test_fpe_on_short_values_refuses_rather_than_leaks(tmp_path: Path) -> None:
    (p := tmp_path / "s.csv").write_text("code\n12345\n123456\n")
    pol = policy_from_mapping({"columns": {"code": {"action": "fpe"}}})
    with pytest.raises(InvalidInput):
        protect_file(path=p, out=tmp_path / "o.csv", keys=KEYS, policy=pol, use_presidio=False)
    assert not (tmp_path / "o.csv").exists()


def test_streaming_chunks_are_bounded(tmp_path: Path, table) -> None:
    raw = table.write_csv(tmp_path / "raw.csv")
    sizes = [c.n_rows for c in iter_chunks(raw, chunk_rows=64)]
    assert max(sizes) == 64 and sum(sizes) == 400


def test_risk_k_anonymity_and_l_diversity(tmp_path: Path) -> None:
    (p := tmp_path / "r.csv").write_text(
        "zip,age,diag\n021**,30-39,flu\n021**,30-39,cold\n021**,30-39,flu\n100**,40-49,flu\n100**,40-49,flu\n"
        "945**,20-29,cold\n"
    )
    rep = assess_risk(path=p, quasi_identifiers=["zip", "age"], sensitive="diag", k=2)
    assert (rep.k, rep.classes, rep.classes_below_k, rep.records_below_k) == (1, 3, 1, 1)
    assert rep.violating_rows == (5,) and not rep.passes
    assert rep.l_diversity == 1
    ok = assess_risk(path=p, quasi_identifiers=["zip"], k=1)
    assert ok.passes and ok.k == 1
    with pytest.raises(InvalidInput):
        assess_risk(path=p, quasi_identifiers=["nope"], k=2)
    with pytest.raises(InvalidInput):
        assess_risk(path=p, quasi_identifiers=[], k=2)


def test_generalization_raises_k(tmp_path: Path, table) -> None:
    """Defence vs linkage attack: raw (zip, age) is unique per person; generalized it is not."""
    raw = table.write_csv(tmp_path / "raw.csv")
    before = assess_risk(path=raw, quasi_identifiers=["zip", "age"], k=2)
    pol = policy_from_mapping({"options": {"zip_digits": 1, "age_band": 50}})
    protect_file(path=raw, out=tmp_path / "g.csv", keys=KEYS, policy=pol, use_presidio=False)
    after = assess_risk(path=tmp_path / "g.csv", quasi_identifiers=["zip", "age"], k=2)
    assert before.k == 1 and before.records_below_k > 300
    assert after.k >= 2 and after.records_below_k == 0


def test_pii_column_is_protected_whole_even_where_no_cell_was_detected(tmp_path: Path) -> None:
    """Fail closed: a column classified pii by its name keeps no cell verbatim, detected or not."""
    names = ["Oluwaseun Adebayo-Okonkwo", "Thandiwe Mthembu", "Aroha Te Whatu", "x", "Kalani Kahananui"] * 20
    passports = ["533380006", "C01X00T47", "12AB34567", "E12345678", "K9-77 1"] * 20
    raw = tmp_path / "people.csv"
    raw.write_text(
        "holder_name,passport,plan\n"
        + "".join(f"{n},{p},basic\n" for n, p in zip(names, passports, strict=True))
    )
    res = protect_file(path=raw, out=tmp_path / "out.csv", keys=KEYS, use_presidio=False)
    kinds = {c.name: (c.label, c.kind) for c in res.report.columns}
    assert kinds["holder_name"] == (Label.pii, "structured") and kinds["passport"] == (
        Label.pii,
        "structured",
    )
    out = next(iter(iter_chunks(tmp_path / "out.csv"))).data
    for column, before in (("holder_name", names), ("passport", passports)):
        assert not [v for v, a in zip(before, out[column], strict=True) if v == a], column
    assert set(out["plan"]) == {"basic"}


def test_free_text_protect_counts_cells_without_detection(tmp_path: Path) -> None:
    notes = ["Customer Jane Doe called from +44 20 7946 0958 about her parcel today"] * 10 + [
        "the parcel arrived late and the box was damaged on arrival"
    ] * 5
    raw = tmp_path / "n.csv"
    raw.write_text("notes\n" + "".join(f"{n}\n" for n in notes))
    res = protect_file(path=raw, out=tmp_path / "o.csv", keys=KEYS, use_presidio=False)
    assert res.report.column("notes").kind == "free_text"
    assert res.undetected == {"notes": 5}
    assert res.to_dict()["plan"][0]["cells_without_detection"] == 5
    assert "Jane Doe" not in (tmp_path / "o.csv").read_text()
