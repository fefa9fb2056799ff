"""Seeded generator of synthetic PII data with known positions (for tests and benchmarks).

Every value is made up: names come from the shipped name list, card numbers and IBANs carry valid check
digits, SSNs follow the SSA area/group/serial rules, so validators accept them. The ground truth records which
cell (row, column) or which text span holds which entity.
"""

from __future__ import annotations

import csv
import ipaddress
import random
import string
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from bastion.data import entities as E
from bastion.data.detectors import name_lists

COLUMNS: tuple[str, ...] = (
    "id",
    "full_name",
    "email",
    "phone",
    "ssn",
    "card_number",
    "iban",
    "ip",
    "dob",
    "address",
    "zip",
    "age",
    "gender",
    "api_token",
    "amount",
    "status",
    "notes",
)
COLUMN_ENTITY: dict[str, str | None] = {
    "id": None,
    "full_name": E.PERSON,
    "email": E.EMAIL,
    "phone": E.PHONE,
    "ssn": E.US_SSN,
    "card_number": E.CREDIT_CARD,
    "iban": E.IBAN,
    "ip": E.IP_ADDRESS,
    "dob": E.DATE_OF_BIRTH,
    "address": E.STREET_ADDRESS,
    "zip": E.ZIP_CODE,
    "age": E.AGE,
    "gender": E.GENDER,
    "api_token": E.SECRET,
    "amount": None,
    "status": None,
    "notes": None,  # free text: entities recorded per row in the truth
}
_DOMAINS = ("example.com", "mail.example.org", "corp.example.net", "inbox.example.co.uk", "company.io")
_STREETS = ("Oak", "Maple", "Cedar", "Pine", "Elm", "Washington", "Lake", "Hill", "Park", "Sunset", "Church")
_STREET_TYPES = ("Street", "Avenue", "Road", "Lane", "Drive", "Court", "Boulevard", "Way")
_STATUS = ("active", "closed", "pending", "suspended")
_GENDERS = ("female", "male", "non-binary")


class Faker:
    """Seeded value makers, one per entity."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        first, last = name_lists()
        self.first = sorted(first)
        self.last = sorted(last)

    def digits(self, n: int) -> str:
        return "".join(self.rng.choice(string.digits) for _ in range(n))

    def name(self) -> str:
        return f"{self.rng.choice(self.first)} {self.rng.choice(self.last)}"

    def email(self, name: str | None = None) -> str:
        first, last = (name or self.name()).lower().split(" ", 1)
        user = self.rng.choice((f"{first}.{last}", f"{first[0]}{last}", f"{first}{self.rng.randint(1, 99)}"))
        return f"{user}@{self.rng.choice(_DOMAINS)}"

    def phone(self) -> str:
        a, b, c = self.rng.randint(201, 989), self.rng.randint(200, 999), self.digits(4)
        return self.rng.choice(
            (
                f"({a}) {b}-{c}",
                f"{a}-{b}-{c}",
                f"+1 {a} {b} {c}",
                f"{a}.{b}.{c}",
                f"+44 20 {b}{c[0]} {c[1:]}9",
            )
        )

    def ssn(self) -> str:
        area = self.rng.choice([x for x in range(1, 900) if x != 666])
        return f"{area:03d}-{self.rng.randint(1, 99):02d}-{self.rng.randint(1, 9999):04d}"

    def card(self) -> str:
        prefix, length = self.rng.choice((("4", 16), ("51", 16), ("55", 16), ("37", 15), ("6011", 16)))
        body = prefix + self.digits(length - len(prefix) - 1)
        total = 0
        for i, ch in enumerate(reversed(body)):
            d = int(ch)
            if i % 2 == 0:
                d = d * 2 - 9 if d > 4 else d * 2
            total += d
        number = body + str((10 - total % 10) % 10)
        style = self.rng.randint(0, 2)
        if style == 1 and length == 16:
            return " ".join(number[i : i + 4] for i in range(0, 16, 4))
        if style == 2 and length == 16:
            return "-".join(number[i : i + 4] for i in range(0, 16, 4))
        return number

    def iban(self) -> str:
        cc, bban = self.rng.choice(
            (
                ("DE", self.digits(18)),
                ("GB", "".join(self.rng.choice(string.ascii_uppercase) for _ in range(4)) + self.digits(14)),
                ("FR", self.digits(23)),
                ("NL", "".join(self.rng.choice(string.ascii_uppercase) for _ in range(4)) + self.digits(10)),
            )
        )
        numeric = "".join(str(int(ch, 36)) for ch in bban + cc + "00")
        compact = f"{cc}{98 - int(numeric) % 97:02d}{bban}"
        if self.rng.random() < 0.5:
            return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
        return compact

    def ip(self) -> str:
        if self.rng.random() < 0.75:
            return ".".join(str(self.rng.randint(1, 254)) for _ in range(4))
        return str(ipaddress.IPv6Address(self.rng.getrandbits(128)))

    def dob(self) -> str:
        d = date(1940, 1, 1) + timedelta(days=self.rng.randint(0, 65 * 365))
        return d.isoformat() if self.rng.random() < 0.6 else f"{d.month:02d}/{d.day:02d}/{d.year}"

    def address(self) -> str:
        return f"{self.rng.randint(1, 9999)} {self.rng.choice(_STREETS)} {self.rng.choice(_STREET_TYPES)}" + (
            f", Apt {self.rng.randint(1, 40)}" if self.rng.random() < 0.2 else ""
        )

    def secret(self) -> str:
        alnum = string.ascii_letters + string.digits
        pick = self.rng.randint(0, 3)
        if pick == 0:
            return "AKIA" + "".join(
                self.rng.choice(string.ascii_uppercase + string.digits) for _ in range(16)
            )
        if pick == 1:
            return "ghp_" + "".join(self.rng.choice(alnum) for _ in range(36))
        if pick == 2:
            return "sk_live_" + "".join(self.rng.choice(alnum) for _ in range(24))
        return "xoxb-" + self.digits(12) + "-" + "".join(self.rng.choice(alnum) for _ in range(24))


@dataclass(frozen=True)
class SynthTable:
    """A generated table: string cells, the entity of every PII cell, and every raw PII value."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    truth: frozenset[tuple[int, str, str]]  # (row, column, entity)
    pii_values: frozenset[str]

    def write_csv(self, path: str | Path) -> Path:
        path = Path(path)
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(self.columns)
            writer.writerows(self.rows)
        return path


_NOTE_TEMPLATES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Customer asked about invoice INV-{n} and the refund schedule.", ()),
    ("Please contact {name} at {email} about the renewal.", (E.PERSON, E.EMAIL)),
    ("Callback number {phone}, ask for {name}.", (E.PHONE, E.PERSON)),
    ("Login from {ip} was flagged by the fraud rules.", (E.IP_ADDRESS,)),
    ("Shipping to {address} next week.", (E.STREET_ADDRESS,)),
    ("Order {n} delivered on time, no issues reported.", ()),
    ("", ()),
)


def _fill(f: Faker, template: str, kinds: tuple[str, ...]) -> tuple[str, list[tuple[int, int, str, str]]]:
    """Fill a template; returns the text and (start, end, entity, value) of every PII value in it."""
    makers = {
        "{name}": (E.PERSON, f.name),
        "{email}": (E.EMAIL, f.email),
        "{phone}": (E.PHONE, f.phone),
        "{ip}": (E.IP_ADDRESS, f.ip),
        "{address}": (E.STREET_ADDRESS, f.address),
        "{ssn}": (E.US_SSN, f.ssn),
        "{card}": (E.CREDIT_CARD, f.card),
        "{iban}": (E.IBAN, f.iban),
        "{dob}": (E.DATE_OF_BIRTH, f.dob),
        "{secret}": (E.SECRET, f.secret),
    }
    out = ""
    spans: list[tuple[int, int, str, str]] = []
    rest = template.replace("{n}", str(f.rng.randint(10000, 99999)))
    while True:
        i = rest.find("{")
        if i < 0:
            out += rest
            break
        j = rest.index("}", i)
        key = rest[i : j + 1]
        entity, make = makers[key]
        value = make()
        out += rest[:i]
        spans.append((len(out), len(out) + len(value), entity, value))
        out += value
        rest = rest[j + 1 :]
    return out, spans


def iter_rows(*, seed: int, rows: int) -> Iterator[tuple[tuple[str, ...], list[tuple[str, str, str]]]]:
    """Yield (row values, [(column, entity, raw value), ...]) for ``rows`` generated rows."""
    f = Faker(seed)
    for i in range(rows):
        name = f.name()
        template, kinds = f.rng.choice(_NOTE_TEMPLATES)
        note, note_spans = _fill(f, template, kinds)
        values = {
            "id": str(i + 1),
            "full_name": name,
            "email": f.email(name),
            "phone": f.phone(),
            "ssn": f.ssn(),
            "card_number": f.card(),
            "iban": f.iban(),
            "ip": f.ip(),
            "dob": f.dob(),
            "address": f.address(),
            "zip": f.digits(5),
            "age": str(f.rng.randint(18, 90)),
            "gender": f.rng.choice(_GENDERS),
            "api_token": f.secret(),
            "amount": f"{f.rng.uniform(1, 5000):.2f}",
            "status": f.rng.choice(_STATUS),
            "notes": note,
        }
        labels = [(c, ent, values[c]) for c, ent in COLUMN_ENTITY.items() if ent is not None]
        labels += [("notes", ent, value) for _, _, ent, value in note_spans]
        yield tuple(values[c] for c in COLUMNS), labels


def generate_table(*, rows: int, seed: int = 0) -> SynthTable:
    """A table of ``rows`` generated records with the ground truth of every PII cell."""
    out_rows = []
    truth: set[tuple[int, str, str]] = set()
    pii: set[str] = set()
    for i, (row, labels) in enumerate(iter_rows(seed=seed, rows=rows)):
        out_rows.append(row)
        for column, entity, value in labels:
            truth.add((i, column, entity))
            if E.entity_label(entity) in (E.Label.pii, E.Label.secret):
                pii.add(value)
    return SynthTable(COLUMNS, tuple(out_rows), frozenset(truth), frozenset(pii))


_TEXT_TEMPLATES: tuple[str, ...] = (
    "Hi team, {name} reported that the export job failed again this morning.",
    "Send the signed contract to {email} before Friday.",
    "My card {card} was charged twice, please refund.",
    "Wire the deposit to {iban} and confirm by phone at {phone}.",
    "The patient was born on {dob} and lives at {address}.",
    "SSN on file: {ssn}. Verified by {name}.",
    "Suspicious requests came from {ip} overnight.",
    "Rotate the leaked key {secret} immediately.",
    "The quarterly report is attached; numbers are up 4.2 percent.",
    "Meeting moved to 3 pm in room 12, bring the Q3 slides.",
    "Ticket 88213 closed after the 2.1.4 release fixed the parser.",
)


@dataclass(frozen=True)
class SynthText:
    """A generated text corpus: lines and the (line, start, end, entity) of every PII span."""

    lines: tuple[str, ...]
    spans: frozenset[tuple[int, int, int, str]]
    pii_values: frozenset[str]

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text("\n".join(self.lines) + "\n", encoding="utf-8")
        return path


def generate_text(*, lines: int, seed: int = 0) -> SynthText:
    """A labelled text corpus of ``lines`` lines (one message per line)."""
    f = Faker(seed)
    out = []
    spans: set[tuple[int, int, int, str]] = set()
    pii: set[str] = set()
    for i in range(lines):
        text, found = _fill(f, f.rng.choice(_TEXT_TEMPLATES), ())
        out.append(text)
        for start, end, entity, value in found:
            spans.add((i, start, end, entity))
            pii.add(value)
    return SynthText(tuple(out), frozenset(spans), frozenset(pii))


__all__ = [
    "COLUMNS",
    "COLUMN_ENTITY",
    "Faker",
    "SynthTable",
    "SynthText",
    "generate_table",
    "generate_text",
    "iter_rows",
]
