"""Issue 21, round-5 attack: detector gaps (national ids, connection-string passwords, …).

Every value here is written for this test (own check digits), not taken from the attack's corpus."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bastion.data import ScopeKeys, protect_file
from bastion.data.detectors import all_detectors, detect_text, detect_values

KEYS = ScopeKeys(bytes(range(32)), scope="r5")


@pytest.fixture(scope="module")
def dets():
    return all_detectors(use_presidio=False)


def _found(text: str, dets, entity: str) -> list[str]:
    return [text[s.start : s.end] for s in detect_text(text, detectors=dets) if s.entity == entity]


def _protect_column(tmp_path: Path, header: str, cells: list[str]) -> str:
    src = tmp_path / "in.csv"
    with src.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", header])
        w.writerows([str(i), c] for i, c in enumerate(cells))
    protect_file(path=src, out=tmp_path / "out.csv", keys=KEYS, use_presidio=False)
    return (tmp_path / "out.csv").read_text(encoding="utf-8")


# ---- F-NAT: Nordic personal numbers, Australian TFN, current ITIN ranges, Chinese ids ---------------------
NATIONAL = (
    # (text, the identifier in it)
    ("Kunde verifiziert, personnummer 197403154821.", "197403154821"),
    ("pnr 581102-1178 bekräftat", "581102-1178"),
    ("ref 20010730-9056 in the ticket", "20010730-9056"),
    ("fødselsnr: 14067942338", "14067942338"),
    ("kunde 4411, fnr 03026518805", "03026518805"),
    ("caller gave her number as 270988 37146 twice", "270988 37146"),
    ("tax file number 174 490 177 on the form", "174 490 177"),
    ("TFN: 434712523", "434712523"),
    ("ITIN 912-55-0147 (issued 2019)", "912-55-0147"),
    ("itin 958621043", "958621043"),
    ("id 440306195804124930 checked", "440306195804124930"),
    ("resident id 51011219491101717X", "51011219491101717X"),
)
NOT_NATIONAL = (
    "fødselsnr: 14067942339",  # wrong check digits
    "order 7403154822 shipped",  # bare digits, no identifier word, Luhn fails
    "ITIN 912-93-0147",  # group 93 is never issued
    "id 440306195804124931",  # wrong check character
    "build 2024112615301 passed",
    "order 14067942338 shipped",  # eleven digits that happen to pass the fødselsnummer checks, no keyword
)


@pytest.mark.parametrize(("text", "value"), NATIONAL)
def test_national_ids_found(dets, text: str, value: str) -> None:
    assert value in _found(text, dets, "NATIONAL_ID"), text


@pytest.mark.parametrize("text", NOT_NATIONAL)
def test_invalid_national_ids_not_found(dets, text: str) -> None:
    assert _found(text, dets, "NATIONAL_ID") == [], text


def test_bare_ids_under_an_id_key_in_json_cells() -> None:
    cells = [
        '{"ref": "C1", "doc": "174490177"}',
        '{"ref": "C2", "doc": "14067942338"}',
        '{"ref": "C3", "doc": "7403154821"}',
        '{"ref": "C4", "doc": "958621043"}',
    ] * 3
    hits = detect_values(cells, column="payload")
    rows = hits.spans_by_row()
    for r, cell in enumerate(cells):
        value = cell.split('"doc": "')[1].rstrip('"}')
        spans = [cell[a:b] for a, b, _e in rows.get(r, [])]
        assert value in spans, (cell, spans)


def test_bare_ids_in_delimited_cells_of_a_pii_column_are_protected(tmp_path: Path) -> None:
    ids = ["03026518805", "14067942338", "27098837146", "174490177", "7403154821"]
    cells = [f"K{4400 + i}|Kari Nordmann|+47 912 34 567|{ids[i % len(ids)]}" for i in range(30)]
    out = _protect_column(tmp_path, "customer_record", cells)
    assert [v for v in ids if v in out] == []


# ---- F-DSN: passwords inside URLs / connection strings ------------------------------------------------
DSN = (
    ("mongodb://admin:V9x!kq2Lr@172.16.4.20:27017/prod", "V9x!kq2Lr"),
    ("[07:12] redis://:s3cr3tPass@192.168.7.2:6379/1", "s3cr3tPass"),
    ("amqp://svc:T0ps#cret@mq-01:5672/", "T0ps#cret"),
    ("sftp://backup:lT7wq9zz@[2001:db8::17]/dump", "lT7wq9zz"),
    ("DATABASE_URL postgresql+psycopg://ledger:plainwords@db:5432/x", "plainwords"),
    ("git clone https://ci-bot:Gh7!pp2q@10.20.30.40/infra.git", "Gh7!pp2q"),
    ("user pasted their key Zq81mVbT3kRw in the chat", "Zq81mVbT3kRw"),
)
NOT_DSN = (
    "see https://example.org:8443/docs and mailto:ops@example.org",
    "redis://:****@cache:6379/0",
    "https://user@host.example/path",
    "the key Ingredient was flour",
)


@pytest.mark.parametrize(("text", "password"), DSN)
def test_url_credentials_are_secrets(dets, text: str, password: str) -> None:
    assert password in _found(text, dets, "SECRET"), text


@pytest.mark.parametrize("text", NOT_DSN)
def test_urls_without_credentials_are_not_secrets(dets, text: str) -> None:
    assert _found(text, dets, "SECRET") == [], text


def test_protect_removes_connection_string_passwords(tmp_path: Path) -> None:
    cells = [f"[{i:02d}:00] {t}" for i, (t, _p) in enumerate(DSN)] * 4
    cells += [f"[{i:02d}:30] job {i} finished in {i * 3} s" for i in range(20)]
    out = _protect_column(tmp_path, "log", cells)
    assert [p for _t, p in DSN if p in out] == []


# ---- F-ZW: zero-width characters or one separator between every character ----------------------------
ZW = ("\u200b", "\u200c", "\u2060", "\ufeff", "\u00ad")
SMUGGLED = (
    # (plain value, its entity): each is written with a smuggling trick between its characters
    ("lena.virtanen@posti-esimerkki.fi", "EMAIL_ADDRESS"),
    ("+358 40 765 4321", "PHONE_NUMBER"),
    ("FI21 1234 5600 0007 85", "IBAN_CODE"),
    ("536-90-4399", "US_SSN"),
    ("174490177", "NATIONAL_ID"),
)


def _plain(s: str) -> str:
    return "".join(c for c in s if c.isalnum()).casefold()


def test_normalise_maps_every_character_back() -> None:
    from bastion.data.detectors._normalise import normalise

    for text in (
        "a\u200bb\u200cc 1.2.3.4.5.6 and x-y-z-w-v",
        "ref 5 2 0 3 1 2 7 please",
        "\ufeffhead\u00adline",
        "Kontakt: k.a.i.s.a.4.1 (bitte)",
    ):
        norm = normalise(text)
        assert norm is not None
        assert len(norm.index) == len(norm.text)
        assert all(text[i] == c for i, c in zip(norm.index, norm.text, strict=True))
        assert norm.span(0, len(norm.text))[1] <= len(text)
    assert normalise("plain words, version 1.2.3, ip 10.0.3.7, 12.03.1984") is None


@pytest.mark.parametrize(("value", "entity"), SMUGGLED)
@pytest.mark.parametrize("trick", ["zw", "dots", "dashes"])
def test_smuggled_values_are_found_in_free_text(dets, value: str, entity: str, trick: str) -> None:
    if trick == "zw":
        shown = "".join(c + ZW[i % len(ZW)] for i, c in enumerate(value))[:-1]
    else:
        shown = ("." if trick == "dots" else "-").join(c for c in value if c.isalnum())
    text = f"Rückruf, Kunden-ID: {shown} (danke)"
    spans = detect_text(text, detectors=dets)
    covered = [text[s.start : s.end] for s in spans]
    assert any(_plain(value) in _plain(c) for c in covered), (text, covered)
    if trick == "zw":
        assert entity in {s.entity for s in spans}


def test_protect_leaves_no_smuggled_value(tmp_path: Path) -> None:
    rows, values = [], []
    for i in range(60):
        value, _e = SMUGGLED[i % 4]  # the four that need no keyword
        zw = f"note {i}: " + ZW[i % len(ZW)].join(value) if i % 3 else f"all good {i}"
        rows.append([str(i), zw, "._-/"[i % 4].join(c for c in value if c.isalnum())])
        values.append((value if i % 3 else None, value))
    src = tmp_path / "in.csv"
    with src.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["id", "zw", "dotted"], *rows])
    protect_file(path=src, out=tmp_path / "out.csv", keys=KEYS, use_presidio=False)
    out = list(csv.DictReader((tmp_path / "out.csv").read_text(encoding="utf-8").splitlines()))
    assert out[1]["zw"].startswith("note 1: tok_")  # the zero-width column keeps its text, values replaced
    for (zw_value, dotted_value), row in zip(values, out, strict=True):
        assert zw_value is None or _plain(zw_value) not in _plain(row["zw"])
        assert _plain(dotted_value) not in _plain(row.get("dotted", ""))  # dropped as concealed or replaced


def test_ordinary_dotted_and_spaced_text_is_not_concealed(dets) -> None:
    for text in (
        "version 1.2.3 released",
        "OID 1.3.6.1.4.1.311",
        "grades A B A C B A B A",
        "bits 0 1 1 0 1 0 0 1",
        "U.S.A. and e.g. i.e.",
        "build 2024.11.26.3704",
    ):
        assert [s for s in detect_text(text, detectors=dets) if s.entity == "SECRET"] == [], text


# ---- F-DOB: birth dates in short, compact and other-language forms -----------------------------------
BIRTH = (
    ("Pt. seen today, DOB 14/09/77, follow-up in May", "14/09/77"),
    ("dob: 3.11.58 (per passport)", "3.11.58"),
    ("DOB 07-MAR-61 per the chart", "07-MAR-61"),
    ("Kundin (geb. 19650817) rief an", "19650817"),
    ("DOB 19921203.", "19921203"),
    ("родилась 5 октября 1971 г. в Казани", "5 октября 1971"),
    ("sinh 02/11/88, địa chỉ Hà Nội", "02/11/88"),
    ("생년월일 1979년 4월 9일", "1979년 4월 9일"),
    ("born ngày 7 tháng 10 năm 1966", "7 tháng 10 năm 1966"),
)
NOT_BIRTH = (
    "batch 14/09/77 shipped",
    "released 1.2.84 today",
    "order 19650817 paid",
    "ref 19921203.pdf attached",
)


@pytest.mark.parametrize(("text", "value"), BIRTH)
def test_birth_dates_found(dets, text: str, value: str) -> None:
    assert value in _found(text, dets, "DATE_OF_BIRTH"), text


@pytest.mark.parametrize("text", NOT_BIRTH)
def test_short_and_compact_dates_without_birth_word_are_not_birth_dates(dets, text: str) -> None:
    spans = detect_text(text, detectors=dets)
    assert [s for s in spans if s.entity in ("DATE_OF_BIRTH", "DATE")] == [], text


# ---- F-DECOY: dated build numbers are not phones; digit runs inside hashes are not cards --------------
def test_dated_build_numbers_are_not_phones(dets) -> None:
    for text in (
        "build 2023.06.14.2207",
        "artifact 2019-12-01-44",
        "release 2025.01.09.118 rolled out",
        "build 2027.4.0.5512",
    ):
        assert detect_text(text, detectors=dets) == [], text
    for text in ("tel 070.345.9821", "call 06.41.27.88.19"):  # dotted phones stay phones
        assert _found(text, dets, "PHONE_NUMBER"), text


def test_card_like_digit_run_inside_a_hash_is_not_a_card(dets) -> None:
    from bastion.data.detectors.financial import luhn_ok

    rnd = __import__("random").Random(5)
    hits = 0
    for _ in range(400):
        digits = "4" + "".join(rnd.choice("0123456789") for _ in range(11))
        digits += next(c for c in "0123456789" if luhn_ok(digits + c))
        digest = "".join(rnd.choice("0123456789abcdef") for _ in range(20)) + "e" + digits + "c"
        digest += "".join(rnd.choice("0123456789abcdef") for _ in range(64 - len(digest)))
        hits += bool(detect_text(f"sha256:{digest}", detectors=dets))
    assert hits == 0
    assert _found("card 4111 1111 1111 1111 on file", dets, "CREDIT_CARD")  # a Luhn-valid card still is one


# ---- F-NAME: names with clear context that no list holds -----------------------------------------------
NAMED = (
    ("Customer Adisaputro called twice about the refund", "Adisaputro"),
    ("Please pay GB33BUKB20201555555555 (account holder Tawhiri).", "Tawhiri"),
    ("Pt. Oyelaran Adekunle, seen for a follow-up", "Oyelaran Adekunle"),
    ("<rec><who>Nkiruka El Amrani</who><tel>+44 20 7946 0958</tel></rec>", "Nkiruka El Amrani"),
    ("<customer>Tuilagi</customer>", "Tuilagi"),
    ("Customer ዮሐንስ ገብሩ called about the invoice", "ዮሐንስ ገብሩ"),
    ("Please pay to (account holder ዮ. ገብሩ).", "ዮ. ገብሩ"),
    ("Spoke with R. T. Okafor about the refund", "R. T. Okafor"),
    ("Le client M. Rakotondrabe souhaite un rappel", "M. Rakotondrabe"),
    ("[09:14] <Tavita Leota> the app keeps crashing", "Tavita Leota"),
    ("[09:15] <Amara Ben Youssef> any update?", "Amara Ben Youssef"),
)
NOT_NAMED = (
    "Customer Feedback form attached",
    "Customer Portal.",
    "Customer Service called back",
    "<status>Shipped</status>",
    "U.S. Army base",
    "The U.S. Government said so",
    "see <Item> list",
)


@pytest.mark.parametrize(("text", "name"), NAMED)
def test_names_with_context_found(dets, text: str, name: str) -> None:
    assert name in _found(text, dets, "PERSON"), text


@pytest.mark.parametrize("text", NOT_NAMED)
def test_common_words_after_person_nouns_are_not_names(dets, text: str) -> None:
    assert _found(text, dets, "PERSON") == [], text


# ---- F-LEN: token length no longer tells the value's length --------------------------------------------
def test_token_length_is_bucketed_and_tokens_reveal() -> None:
    keys = ScopeKeys(bytes(range(32)), scope="crm")
    short = ["A", "Li", "Ngozi Eze", "078-05-1120", "1984-03-03", "x" * 15]
    assert len({len(keys.token(v)) for v in short}) == 1  # one length for every value up to 15 bytes
    assert len(keys.token("x" * 16)) > len(keys.token("x" * 15))
    for v in [*short, "", "Chukwuemeka Okonkwo-Adeyemi", "é" * 40, "x" * 200, "a\x80\x00"]:
        assert keys.reveal(keys.token(v)) == v
    assert keys.token("Ngozi Eze") == ScopeKeys(bytes(range(32)), scope="crm").token("Ngozi Eze")


def test_tokens_made_before_padding_still_reveal() -> None:
    # Made by the unpadded format (AES-SIV over the bare value, associated data "bastion-token-v1").
    keys = ScopeKeys(bytes(range(32)), scope="crm")
    assert keys.reveal("tok_KYNij-nFRVT0nQwJOGMtzMN9VWdks8yCsor57y9Ow1mypYDK") == "jane.doe@example.org"
    assert keys.reveal("tok_1sJXIqmBU0e3kAZYpQ3egycQ3PeNLS_CD6Wg") == "078-05-1120"
    from bastion.errors import CryptoError

    with pytest.raises(CryptoError):
        ScopeKeys(bytes(range(32)), scope="hr").reveal("tok_1sJXIqmBU0e3kAZYpQ3egycQ3PeNLS_CD6Wg")


# ---- phones: bare national numbers after another language's word for phone / call ---------------------
@pytest.mark.parametrize(
    "text",
    [
        "Παρακαλώ καλέστε τον πελάτη στο 08031234567.",
        "số điện thoại 08061234567, cảm ơn",
        "позвоните по телефону 89161234567",
        "bitte anrufen: 01711234567",
    ],
)
def test_bare_phones_after_call_words_in_other_languages(dets, text: str) -> None:
    assert _found(text, dets, "PHONE_NUMBER"), text


def test_bare_digits_without_a_call_word_are_not_phones(dets) -> None:
    assert _found("order 08031234567 shipped", dets, "PHONE_NUMBER") == []
