"""Hand-written international free text and decoys (not generated, not from any detector's list).

Each line names the values that must be covered by a detected span; decoy lines must yield nothing.
"""

from __future__ import annotations

import pytest

from bastion.data import ScopeKeys
from bastion.data._cells import CellProtector
from bastion.data.detectors import all_detectors, detect_text, detect_values

LINES = [
    ("Ticket opened by Hiroshi Tanaka after the outage; he asked for a refund.", ["Hiroshi Tanaka"]),
    (
        "Please ship to: Mrs. Amara Okoye, 14 Adeola Odeku Street, Victoria Island, Lagos",
        ["Amara Okoye", "14 Adeola Odeku Street"],
    ),
    (
        "Bitte senden Sie die Unterlagen an Jürgen Weiß, Lindenallee 7, 50968 Köln.",
        ["Jürgen Weiß", "Lindenallee 7", "50968 Köln"],
    ),
    (
        "Le client Jean-Baptiste Lefèvre (né le 12 mars 1975) a appelé au 01 42 68 53 00.",
        ["Jean-Baptiste Lefèvre", "12 mars 1975", "01 42 68 53 00"],
    ),
    (
        "El Sr. José Luis Martínez Ortega pidió cambiar su DNI 12345678Z en el sistema.",
        ["José Luis Martínez Ortega", "12345678Z"],
    ),
    (
        "Paziente: Giulia Bianchi, codice fiscale RSSMRA85T10A562S, tel. 347 123 4567",
        ["Giulia Bianchi", "RSSMRA85T10A562S", "347 123 4567"],
    ),
    (
        "Call from Siobhán O'Connor re: invoice 4471; callback +353 87 123 4567",
        ["Siobhán O'Connor", "+353 87 123 4567"],
    ),
    (
        "Meeting notes - attendees: Priya Raghunathan, Tomasz Wiśniewski, Chen Wei.",
        ["Priya Raghunathan", "Tomasz Wiśniewski", "Chen Wei"],
    ),
    ("DOB 1983-07-14, SSN 123-45-6789, member since 2019.", ["1983-07-14", "123-45-6789"]),
    (
        "Account holder Olumide Balogun updated his email to olu.b@mailbox.ng",
        ["Olumide Balogun", "olu.b@mailbox.ng"],
    ),
    ("Driver's license number D1234-56789-01234 was scanned at check-in.", ["D1234-56789-01234"]),
    ("The Aadhaar number 4991 1866 5246 was provided for KYC.", ["4991 1866 5246"]),
    (
        "Her BSN is 111222333 and she lives at Keizersgracht 123, 1015 CJ Amsterdam.",
        ["111222333", "Keizersgracht 123"],
    ),
    ("Contact Kwame Mensah on 024 123 4567 about the shipment.", ["Kwame Mensah", "024 123 4567"]),
    ("Thanks for your help! - Astrid Lindqvist", ["Astrid Lindqvist"]),
    (
        "Customer Ngô Bảo Châu reported a double charge on card 4111 1111 1111 1111.",
        ["Ngô Bảo Châu", "4111 1111 1111 1111"],
    ),
    ("Requested by: Fatima Al-Zahra; approved by: Omar Haddad.", ["Fatima Al-Zahra", "Omar Haddad"]),
    ("Sent to 742 Evergreen Terrace, Springfield, OR 97403 on Monday.", ["742 Evergreen Terrace"]),
    ("Passenger name: MÜLLER/ANNA MARIA MRS, passport C01X00T47", ["MÜLLER", "ANNA MARIA", "C01X00T47"]),
    (
        "Teléfono de contacto: +34 612 34 56 78, correo: maria.garcia@correo.es",
        ["+34 612 34 56 78", "maria.garcia@correo.es"],
    ),
    ("王秀英来电询问订单。", ["王秀英"]),
    ("Dear 김민준, your parcel is on its way.", ["김민준"]),
    (
        "Born on March 3rd, 1982; NINO QQ 12 34 56 C is not valid but AB 12 34 56 C is.",
        ["March 3rd, 1982", "AB 12 34 56 C"],
    ),
]
DECOYS = [
    "Version 2.4.1 released on 2024-03-05 at 10:22; build 20240305.",
    "Order ORD-2024-000123 contains ISBN 978-0-306-40615-7 and SKU-A123-45, price 19.99.",
    "Event logged 2024-03-05T10:22:13Z from device SN-4829-1182-7731 at 48.85660, 2.35220.",
    "Windows 10.0.19041.1 and firmware v3.2.10 on rack B-12.",
]


@pytest.fixture(scope="module")
def dets():
    return all_detectors()


@pytest.mark.parametrize(("line", "values"), LINES)
def test_values_in_free_text_are_found(dets, line: str, values: list[str]) -> None:
    spans = detect_text(line, detectors=dets)
    for v in values:
        start = line.index(v)
        covered = any(s.start <= start and s.end >= start + len(v) for s in spans)
        assert covered, (v, [(s.entity, line[s.start : s.end]) for s in spans])


@pytest.mark.parametrize("line", DECOYS)
def test_decoys_stay_untouched(dets, line: str) -> None:
    assert detect_text(line, detectors=dets) == []


def test_decoy_columns_are_not_classified(dets) -> None:
    columns = {
        "created_at": [f"2024-03-{d:02d}T10:{d:02d}:13Z" for d in range(1, 29)],
        "isbn": ["978-3-16-148410-0", "978-0-306-40615-7", "978-1-4028-9462-6"] * 10,
        "app_version": [f"{a}.{b}.{c}" for a in range(1, 4) for b in range(3) for c in range(4)],
        "lat": [f"{40 + i / 7:.5f}" for i in range(30)],
        "price": [f"{i * 3.17:.2f}" for i in range(30)],
        "order_ref": [str(100000000 + i * 7919) for i in range(30)],
        "city": ["Porto Alegre", "San Francisco", "Lyon", "Leeds", "Graz", "New York", "Rio de Janeiro"] * 5,
        "product": ["Widget Pro", "Gadget Max", "Ultra Phone", "Smart Watch"] * 8,
    }
    for name, values in columns.items():
        hits = detect_values(values, column=name, detectors=dets)
        assert not hits.entities, (name, list(hits.entities))


def test_json_and_key_value_cells_protected_by_key(dets) -> None:
    keys = ScopeKeys(bytes(range(32)), scope="t")
    cells = CellProtector(lambda text, _e: keys.token(text), dets)
    out, n = cells.protect('{"fullName": "Zsófia Görgényi", "tier": "gold", "dob": "1980-02-03"}') or ("", 0)
    assert "Zsófia" not in out and "1980-02-03" not in out and '"tier": "gold"' in out and n == 2
    out, n = cells.protect("name=Wiremu Tāwhiao; passport=533380006; plan=basic") or ("", 0)
    assert "Tāwhiao" not in out and "533380006" not in out and "plan=basic" in out
