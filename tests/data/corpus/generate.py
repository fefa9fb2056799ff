# ruff: noqa: E501 - data tables and templates read better unwrapped
"""Evaluation corpus for data protection, built independently of bastion's detectors.

Sources kept apart from what the detectors use: names come from `mimesis` (its own per-locale name lists;
the detectors use Faker's and bastion's), plus a hand-written list of names chosen to be rare; identifiers
are made here from the published check-digit rules (not with python-stdnum, which the detectors use);
dates, phones and addresses are written in this file's own formats. Nothing here imports ``bastion``.

    python tests/data/corpus/generate.py   # rewrites customers.csv and labels.json beside this file

``labels.json``: for every column its label (public/internal/confidential/pii/secret) and for every row the
sensitive values a reader must not find verbatim after ``protect`` (``[row, column, entity, value]``).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import string
from datetime import date, datetime, timedelta
from pathlib import Path

from mimesis import Person
from mimesis.locales import Locale

HERE = Path(__file__).parent
ROWS = 300
LOCALES = [
    Locale.EN, Locale.DE, Locale.FR, Locale.ES, Locale.IT, Locale.PT_BR, Locale.NL, Locale.PL, Locale.TR,
    Locale.RU, Locale.EL, Locale.JA, Locale.KO, Locale.ZH, Locale.AR_EG, Locale.FA, Locale.CS, Locale.HU,
    Locale.SV, Locale.FI, Locale.UK, Locale.KK, Locale.IS, Locale.DA, Locale.HR,
]  # fmt: skip
# Written for this corpus: spellings unlikely to be in any name list (particles, apostrophes, hyphens,
# diacritics), so recall on names outside every list can be measured.
RARE_NAMES = [
    "Oluwaseun Adebayo-Okonkwo", "Thandiwe Mthembu", "Nguyễn Thị Minh Khai", "Siobhán Ní Bhriain",
    "Eilidh MacGillivray", "Aroha Te Whatu", "Kwabena Owusu-Ansah", "Tupac Quispe Mamani",
    "Bjørnar Løvåsen", "Zsófia Görgényi", "Dagrún Þórhallsdóttir", "Marguerite d'Aubigné-Vaux",
    "Ruairí Ó Dálaigh", "Ngozi Eze-Chukwu", "Ximena Huanca Choque", "Wiremu Tāwhiao", "Anahí Guaraní Yvoty",
    "Kalani Kahananui", "Mehmet Ağaoğlu", "Ijeoma Nwachukwu", "Tenzin Dorjee Lhamo", "Priyamvada Venkataraghavan",
    "Ayasha Nakoma", "Eldrid Skjæveland", "Yerlan Nurmagambetov", "Gwenllian ap Rhys", "Keoni Kealoha",
    "Ana-Lucía van der Wijngaart", "Séamus Mac Giolla Phádraig", "Chinedu Obi-Nwosu",
]  # fmt: skip
STREETS = [
    ("{n} {s} Street", "{c} {pc}"), ("{n} rue des {s}", "{pc} {c}"), ("{s}straße {n}", "{pc} {c}"),
    ("Via {s} {n}", "{pc} {c}"), ("Calle {s}, {n}", "{pc} {c}"), ("{n} {s} Road", "{c} {pc}"),
    ("Rua {s}, {n}", "{pc} {c}"), ("{s}gracht {n}", "{pc} {c}"),
]  # fmt: skip
STREET_WORDS = [
    "Linden",
    "Oakridge",
    "Tilleul",
    "Roma",
    "Mayor",
    "Augusta",
    "Kaiser",
    "Heeren",
    "Birch",
    "Garibaldi",
]
CITIES = ["Springfield", "Lyon", "Leipzig", "Torino", "Sevilla", "Leeds", "Porto Alegre", "Utrecht", "Graz"]
MONTHS_WRITTEN = {
    "en": ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"],
    "fr": ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
           "novembre", "décembre"],
    "de": ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober",
           "November", "Dezember"],
    "es": ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
           "noviembre", "diciembre"],
}  # fmt: skip


# ------------------------------------------------------------------------------ identifiers (own algorithms)
def luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return str((10 - total % 10) % 10)


_VD = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
       [3, 4, 0, 1, 2, 8, 9, 5, 6, 7], [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
       [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3], [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
       [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]]  # fmt: skip
_VP = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4]]
_VINV = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9]


def verhoeff_digit(body: str) -> str:
    c = 0
    for i, ch in enumerate(reversed(body)):
        p = _VP[0]
        row = (i + 1) % 8
        perm = int(ch)
        for _ in range(row):
            perm = _VP[1][perm]
        c = _VD[c][perm]
        del p
    return str(_VINV[c])


class Ids:
    def __init__(self, rng: random.Random) -> None:
        self.r = rng

    def d(self, n: int) -> str:
        return "".join(self.r.choice(string.digits) for _ in range(n))

    def nino(self) -> str:
        a = self.r.choice("ABCEGHJKLMNPRSTWXYZ")
        b = self.r.choice("ABCEGHJKLMNPRSTWXYZ")
        s = self.d(6)
        return f"{a}{b} {s[:2]} {s[2:4]} {s[4:]} {self.r.choice('ABCD')}"

    def aadhaar(self) -> str:
        body = str(self.r.randint(2, 9)) + self.d(10)
        v = body + verhoeff_digit(body)
        return f"{v[:4]} {v[4:8]} {v[8:]}"

    def cpf(self) -> str:
        n = [int(c) for c in self.d(9)]
        for k in (10, 11):
            s = sum(x * w for x, w in zip(n, range(k, 1, -1)))
            n.append(0 if s % 11 < 2 else 11 - s % 11)
        t = "".join(map(str, n))
        return f"{t[:3]}.{t[3:6]}.{t[6:9]}-{t[9:]}"

    def dni(self) -> str:
        n = self.r.randint(10000000, 99999999)
        return f"{n}{'TRWAGMYFPDXBNJZSQVHLCKE'[n % 23]}"

    def nie(self) -> str:
        p = self.r.choice("XYZ")
        n = self.r.randint(1000000, 9999999)
        return f"{p}{n}{'TRWAGMYFPDXBNJZSQVHLCKE'[int(str('XYZ'.index(p)) + str(n)) % 23]}"

    def bsn(self) -> str:
        while True:
            n = [int(c) for c in self.d(8)]
            s = sum(x * w for x, w in zip(n, range(9, 1, -1)))
            last = s % 11
            if last < 10 and n[0] != 0:
                return "".join(map(str, n)) + str(last)

    def sin(self) -> str:
        body = str(self.r.randint(1, 7)) + self.d(7)
        v = body + luhn_digit(body)
        return f"{v[:3]}-{v[3:6]}-{v[6:]}"

    def nir(self) -> str:
        body = f"{self.r.randint(1, 2)}{self.r.randint(40, 99)}{self.r.randint(1, 12):02d}{self.r.randint(1, 95):02d}"
        body += self.d(6)
        key = 97 - int(body) % 97
        return f"{body[0]} {body[1:3]} {body[3:5]} {body[5:7]} {body[7:10]} {body[10:13]} {key:02d}"

    def cn_ric(self) -> str:
        born = date(1950, 1, 1) + timedelta(days=self.r.randint(0, 20000))
        area = self.r.choice(["110101", "310101", "440103", "510104", "330106"])  # real county codes
        body = f"{area}{born:%Y%m%d}{self.d(3)}"
        w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
        return body + "10X98765432"[sum(int(c) * x for c, x in zip(body, w)) % 11]

    def kr_rrn(self) -> str:
        born = date(1950, 1, 1) + timedelta(days=self.r.randint(0, 18000))
        body = f"{born:%y%m%d}{self.r.choice('12')}{self.d(5)}"
        w = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5]
        check = (11 - sum(int(c) * x for c, x in zip(body, w)) % 11) % 10
        return f"{body[:6]}-{body[6:]}{check}"

    def codice_fiscale(self) -> str:
        odd = dict(zip(string.digits + string.ascii_uppercase,
                       [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3,
                        6, 8, 12, 14, 16, 10, 22, 25, 24, 23]))  # fmt: skip
        even = {c: (int(c) if c.isdigit() else ord(c) - 65) for c in string.digits + string.ascii_uppercase}
        letters = "".join(self.r.choice("BCDFGHLMNPRSTVZ") for _ in range(6))
        body = (
            letters
            + self.d(2)
            + self.r.choice("ABCDEHLMPRST")
            + f"{self.r.randint(1, 28):02d}"
            + self.r.choice("ABCDEFGHLM")
            + self.d(3)
        )
        s = sum(odd[c] if i % 2 == 0 else even[c] for i, c in enumerate(body))
        return body + chr(65 + s % 26)

    def steuer_id(self) -> str:
        while True:
            digits = [self.r.randint(1, 9)] + [self.r.randint(0, 9) for _ in range(9)]
            counts = sorted(digits.count(x) for x in set(digits))
            if counts not in ([1] * 8 + [2], [1] * 7 + [3]):
                continue
            product = 10
            for x in digits:
                total = (x + product) % 10 or 10
                product = (total * 2) % 11
            check = (11 - product) % 10
            t = "".join(map(str, digits)) + str(check)
            return f"{t[:2]} {t[2:5]} {t[5:8]} {t[8:]}"


def passport(r: random.Random) -> str:
    kind = r.randrange(4)
    if kind == 0:
        return "".join(r.choice(string.digits) for _ in range(9))
    if kind == 1:
        return f"{r.randint(10, 99)}{r.choice('ABCDEFGH')}{r.choice('ABCDEFGH')}{r.randint(10000, 99999)}"
    if kind == 2:
        return r.choice("CFGHJK") + "".join(r.choice("0123456789CFGHJKLMNPRTVWXYZ") for _ in range(8))
    return r.choice("EGP") + "".join(r.choice(string.digits) for _ in range(8))


def licence(r: random.Random, surname: str) -> str:
    if r.random() < 0.5:
        s = "".join(c for c in surname.upper() if "A" <= c <= "Z")[:5].ljust(5, "9")
        return (
            f"{s}{r.randint(5, 9)}{r.randint(0, 1)}{r.randint(1, 2)}{r.randint(1, 28):02d}{r.randint(0, 9)}"
            f"{r.choice('ABCDEFGHJ')}{r.choice('ABCDEFGHJ')}{r.randint(1, 9)}{r.choice('ABCD')}{r.choice('XYZ')}"
        )
    return f"{r.choice('ABDGKMS')}{r.randint(100, 999)}-{r.randint(100, 999)}-{r.randint(10, 99)}-{r.randint(100, 999)}"


def written_date(r: random.Random, d: date) -> str:
    form = r.randrange(9)
    if form == 0:
        return d.isoformat()
    if form == 1:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(d.day if d.day < 20 else d.day % 10, "th")
        return f"{MONTHS_WRITTEN['en'][d.month - 1]} {d.day}{suffix}, {d.year}"
    if form == 2:
        return f"{d.day} {MONTHS_WRITTEN['en'][d.month - 1][:3]} {d.year}"
    if form == 3:
        return f"{d.year}/{d.month:02d}/{d.day:02d}"
    if form == 4:
        return f"{d.day:02d}/{d.month:02d}/{d.year}"
    if form == 5:
        return f"{d.day}. {MONTHS_WRITTEN['de'][d.month - 1]} {d.year}"
    if form == 6:
        return f"{d.day} {MONTHS_WRITTEN['fr'][d.month - 1]} {d.year}"
    if form == 7:
        return f"{d.day} de {MONTHS_WRITTEN['es'][d.month - 1]} de {d.year}"
    return f"{d:%Y%m%d}"


def phone(r: random.Random) -> str:
    form = r.randrange(7)
    if form == 0:
        return f"+44 20 7{r.randint(100, 999)} {r.randint(1000, 9999)}"
    if form == 1:
        return f"+49 30 {r.randint(1000000, 9999999)}"
    if form == 2:
        return f"06 {r.randint(10, 99)} {r.randint(10, 99)} {r.randint(10, 99)} {r.randint(10, 99)}"
    if form == 3:
        return f"({r.choice(['212', '415', '617', '303'])}) {r.randint(200, 999)}-{r.randint(1000, 9999)}"
    if form == 4:
        return f"+91 9{r.randint(100000000, 999999999)}"
    if form == 5:
        return f"+55 11 9{r.randint(1000, 9999)}-{r.randint(1000, 9999)}"
    return f"+81 3-{r.randint(1000, 9999)}-{r.randint(1000, 9999)}"


def iban_de(r: random.Random) -> str:
    bban = "".join(r.choice(string.digits) for _ in range(18))
    check = 98 - int(bban + "131400") % 97
    return f"DE{check:02d}{bban}"


def card(r: random.Random) -> str:
    body = r.choice(["4", "51", "37"]) + "".join(r.choice(string.digits) for _ in range(13 if True else 0))
    body = body[:15]
    return body + luhn_digit(body)


def secret(r: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits
    return r.choice(["sk_live_", "ghp_", "AKIA", "xoxb-"]) + "".join(r.choice(alphabet) for _ in range(36))


NOTE_TEMPLATES = [
    ("Customer {name} called about the delivery; call back on {phone}.", ["name", "phone"]),
    ("Dear {name}, your order has shipped.", ["name"]),
    ("Spoke with {name} today, DOB {dob}, verified ID {nid}.", ["name", "dob", "nid"]),
    ("{name} wrote from {email} asking to update the address to {street}, {city_line}.",
     ["name", "email", "street"]),
    ("Refund approved. Regards, {name}", ["name"]),
    ("Passport {passport} checked at the desk for {name}.", ["passport", "name"]),
    ("Born {dob}; contact {phone}.", ["dob", "phone"]),
    ("Escalated by {name} (customer) - mobile {phone}", ["name", "phone"]),
    ("Mr {surname} prefers email: {email}", ["surname", "email"]),
]  # fmt: skip


def build(n_rows: int = ROWS, seed: int = 20261205) -> tuple[list[str], list[list[str]], dict]:
    """The corpus: header, rows and labels (``n_rows`` rows from ``seed``; the defaults are the checked-in one)."""
    r = random.Random(seed)
    ids = Ids(r)
    people = {loc: Person(loc, seed=r.randint(0, 10**6)) for loc in LOCALES}
    id_makers = [ids.nino, ids.aadhaar, ids.cpf, ids.dni, ids.nie, ids.bsn, ids.sin, ids.nir, ids.cn_ric,
                 ids.kr_rrn, ids.codice_fiscale, ids.steuer_id]  # fmt: skip
    header = [
        "client", "contact_email", "mobile", "national_id", "passport_no", "driving_licence", "date_of_birth",
        "ship_to", "iban", "card", "login_password", "api_key", "notes", "profile", "postcode", "age",
        "gender", "order_id", "created_at", "device_serial", "isbn", "sku", "app_version", "site_lat",
        "site_lon", "price", "order_ref_num", "shipped_on",
    ]  # fmt: skip
    labels = {
        "client": "pii", "contact_email": "pii", "mobile": "pii", "national_id": "pii", "passport_no": "pii",
        "driving_licence": "pii", "date_of_birth": "pii", "ship_to": "pii", "iban": "pii", "card": "pii",
        "login_password": "secret", "api_key": "secret", "notes": "pii", "profile": "pii",
        "postcode": "confidential", "age": "confidential", "gender": "confidential",
        "order_id": "internal", "created_at": "internal", "device_serial": "internal", "isbn": "public",
        "sku": "internal", "app_version": "internal", "site_lat": "public", "site_lon": "public",
        "price": "internal", "order_ref_num": "internal", "shipped_on": "internal",
    }  # fmt: skip
    rows, values = [], []
    start = datetime(2024, 1, 1, 8, 0, 0)
    for i in range(n_rows):
        if r.random() < 0.2:
            name = r.choice(RARE_NAMES)
        else:
            p = people[r.choice(LOCALES)]
            name = f"{p.first_name()} {p.last_name()}"
        surname = name.split()[-1]
        email = (
            f"{''.join(c for c in name.lower() if c.isascii() and c.isalpha())[:12] or 'user'}{i}@example.net"
        )
        ph = phone(r)
        nid = r.choice(id_makers)()
        pp = passport(r)
        lic = licence(r, surname)
        born = date(1940, 1, 1) + timedelta(days=r.randint(0, 25000))
        dob = written_date(r, born)
        pattern, city_pattern = r.choice(STREETS)
        street = pattern.format(n=r.randint(1, 250), s=r.choice(STREET_WORDS))
        city_line = city_pattern.format(c=r.choice(CITIES), pc=r.randint(10000, 99999))
        ship_to = f"{name}\n{street}\n{city_line}" if r.random() < 0.5 else f"{street}, {city_line}"
        iban = iban_de(r)
        cc = card(r)
        pwd = "".join(r.choice(string.ascii_letters + string.digits + "!#$%") for _ in range(12))
        key = secret(r)
        template, planted = r.choice(NOTE_TEMPLATES)
        fields = {"name": name, "phone": ph, "dob": dob, "nid": nid, "email": email, "street": street,
                  "city_line": city_line, "passport": pp, "surname": surname}  # fmt: skip
        note = template.format(**fields)
        profile = json.dumps({"fullName": name, "dob": dob, "phone": ph, "tier": r.choice(["gold", "basic"])},
                             ensure_ascii=False)  # fmt: skip
        ent = {"name": "PERSON", "phone": "PHONE", "dob": "DATE_OF_BIRTH", "nid": "NATIONAL_ID",
               "email": "EMAIL", "street": "ADDRESS", "passport": "PASSPORT", "surname": "PERSON"}  # fmt: skip
        row = [
            name, email, ph, nid, pp, lic, dob, ship_to, iban, cc, pwd, key, note, profile,
            f"{r.randint(10000, 99999)}", str(r.randint(18, 90)), r.choice(["female", "male", "diverse"]),
            f"ORD-2024-{i:06d}", (start + timedelta(minutes=37 * i)).isoformat() + "Z",
            f"SN-{r.randint(1000, 9999)}-{r.randint(1000, 9999)}-{r.randint(1000, 9999)}",
            r.choice(["978-3-16-148410-0", "978-0-306-40615-7", "978-1-4028-9462-6"]),
            f"SKU-{r.choice('ABCDEF')}{r.randint(100, 999)}-{r.randint(10, 99)}",
            f"{r.randint(1, 4)}.{r.randint(0, 20)}.{r.randint(0, 99)}",
            f"{r.uniform(-60, 60):.5f}", f"{r.uniform(-120, 120):.5f}", f"{r.uniform(1, 999):.2f}",
            str(r.randint(100000000, 999999999)),
            (date(2024, 1, 1) + timedelta(days=i)).isoformat(),
        ]  # fmt: skip
        rows.append(row)
        structured = [("client", "PERSON", name), ("contact_email", "EMAIL", email), ("mobile", "PHONE", ph),
                      ("national_id", "NATIONAL_ID", nid), ("passport_no", "PASSPORT", pp),
                      ("driving_licence", "DRIVER_LICENSE", lic), ("date_of_birth", "DATE_OF_BIRTH", dob),
                      ("ship_to", "ADDRESS", street), ("iban", "IBAN", iban), ("card", "CREDIT_CARD", cc),
                      ("login_password", "SECRET", pwd), ("api_key", "SECRET", key)]  # fmt: skip
        for col, e, v in structured:
            values.append([i, col, e, v])
        if ship_to.startswith(name):
            values.append([i, "ship_to", "PERSON", name])
        for f in planted:
            values.append([i, "notes", ent[f], fields[f]])
        for f, e in (("name", "PERSON"), ("dob", "DATE_OF_BIRTH"), ("phone", "PHONE")):
            values.append([i, "profile", e, fields[f]])
    return header, rows, {"columns": labels, "values": values, "rare_names": RARE_NAMES}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Write the evaluation corpus (customers.csv, labels.json).")
    ap.add_argument("--rows", type=int, default=ROWS)
    ap.add_argument("--seed", type=int, default=20261205)
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args(argv)
    header, rows, doc = build(args.rows, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "customers.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    text = json.dumps(doc, ensure_ascii=False, indent=0) + "\n"
    (args.out / "labels.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
