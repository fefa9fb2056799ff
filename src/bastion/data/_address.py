"""Postal addresses in several countries' formats, on one line or several (shipping labels).

A street line is found in one of three shapes:

* number first: ``221B Baker Street``, ``12 rue de Rivoli``, ``1600 Pennsylvania Ave NW``;
* street word first, number after: ``Via Roma 12``, ``Calle Mayor, 5``, ``Rua Augusta 100``,
  ``ul. Marszałkowska 10``, ``Avenida Paulista, 1578``;
* compound street names: ``Hauptstraße 5``, ``Keizersgracht 123``, ``Storgatan 7``;

plus ``PO Box``/``Postfach`` lines and Japanese ``〒`` postcodes. The span then extends over the following
comma- or newline-separated parts that hold a postcode (US, UK, Canada, Germany, France, Netherlands,
Poland, Japan, Brazil …) or a short capitalised place or country name (at most three parts), so a
multi-line label is replaced whole.
"""

from __future__ import annotations

import re

STREET_WORDS = (
    "Street|St|Avenue|Ave|Av|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Circle|"
    "Parkway|Pkwy|Highway|Hwy|Square|Sq|Close|Crescent|Row|Mews|Walk|Hill|Gardens|Grove|Park|Trail|"
    "rue|Rue|avenue|boulevard|bd|chemin|Chemin|allée|Allée|impasse|Impasse|quai|Quai|place|cours|route|"
    "Route|Via|via|Viale|viale|Piazza|piazza|Corso|corso|Vicolo|Largo|Calle|calle|C/|Avenida|avenida|Av\\.|"
    "Paseo|paseo|Plaza|plaza|Carrera|Camino|Rua|rua|Travessa|Praça|Estrada|Alameda|ul\\.|ulica|al\\.|"
    "Straße|Strasse|Str\\.|Weg|Allee|Platz|Gasse|Ring|Damm|Ufer|Chaussee|Laan|Straat|Gracht|Plein|Kade|"
    "Singel|Dijk|Vej|Gade|Gatan|Gata|Vägen|Veien|Katu|Tie|Utca|Sokak|Caddesi|Mahallesi"
)
_COMPOUND = (
    r"(?:straße|strasse|str\.|weg|allee|platz|gasse|ring|damm|ufer|chaussee|laan|straat|gracht|plein|kade|"
    r"singel|dijk|vej|gade|gatan|gata|vägen|veien|katu|tie|utca)"
)
_CAP = r"[A-ZÀ-ÖØ-ÞĀ-Ž][^\W\d_]*\.?"
_WORDS = r"(?:(?:" + _CAP + r"|de|del|la|le|les|des|du|di|da|do|dos|das|von|van|der|of|the)[ ]+){0,5}"
NUMBER_FIRST = (
    r"\d{1,5}[A-Za-z]?(?:[-/]\d{1,4})?,?[ ]+(?:[NSEW]\.?[ ]+)?"
    + _WORDS
    + r"(?:"
    + STREET_WORDS
    + r")\b(?:[ ]+(?:de|du|des|de la|del|della|di)?[ ]*"
    + _CAP
    + r"){0,3}(?:[ ]+(?:NW|NE|SW|SE|N|S|E|W))?"
)
WORD_FIRST = (
    r"(?:" + STREET_WORDS + r")[ ]+" + _WORDS + _CAP + r"(?:[ ]+" + _CAP + r"){0,3},?[ ]+\d{1,5}[A-Za-z]?\b"
)
COMPOUND = r"[A-ZÀ-ÖØ-ÞĀ-Ž][^\W\d_]*" + _COMPOUND + r"[ ]+\d{1,4}[a-zA-Z]?\b"
PO_BOX = r"(?:P\.?[ ]?O\.?[ ]?Box|Postfach|Apartado|Caixa Postal|Boîte Postale|BP)[ ]+\d{1,6}"
JP = r"〒\d{3}-\d{4}[^\n\x00,]{0,40}"
_UNIT = (
    r"(?:,?[ ]+(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|Bus|Piso|Étage|Whg|App)\.?[ ]?#?[0-9A-Z]{1,6})?"
)

STREET_LINE = re.compile(
    r"(?<![\w/.-])(?:" + "|".join((NUMBER_FIRST, WORD_FIRST, COMPOUND, PO_BOX, JP)) + r")" + _UNIT
)

_POSTCODE = re.compile(
    r"(?:\b\d{5}(?:-\d{4})?\b|\b\d{4}[ ]?[A-Z]{2}\b|\b[A-Z]{1,2}\d[A-Z\d]?[ ]?\d[A-Z]{2}\b"
    r"|\b[A-Z]\d[A-Z][ ]?\d[A-Z]\d\b"
    r"|\b\d{3}-\d{4}\b|\b\d{2}-\d{3}\b|\b\d{5}-\d{3}\b|\b\d{4}\b|\b[A-Z]{2}[ ]\d{5}\b)"
)
_PLACE = re.compile(r"[A-ZÀ-ÖØ-ÞĀ-Ž][^\W\d_]*(?:[ -][A-ZÀ-ÖØ-ÞĀ-Ž(][^\W\d_)]*){0,3}\.?")
_NEXT = re.compile(r"(?:,[ ]*|[ ]*\r?\n[ ]*|[ ]{2,})")


def _extend(text: str, end: int) -> int:
    """Extend a street line over up to three following postcode / place parts."""
    for _ in range(3):
        m = _NEXT.match(text, end)
        if not m:
            break
        part_start = m.end()
        stop = len(text)
        for sep in (",", "\n", "\x00", ";"):
            i = text.find(sep, part_start)
            if i != -1:
                stop = min(stop, i)
        part = text[part_start:stop].rstrip(" .\r")
        if not part or len(part) > 48:
            break
        if (
            _POSTCODE.search(part)
            and len(part.split()) <= 6
            and not re.search(r"[a-z]{3,}[ ]+[a-z]{3,}", part)
        ) or _PLACE.fullmatch(part):
            end = part_start + len(part)
        else:
            break
    return end


def address_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every postal address found in ``text``."""
    out = []
    for m in STREET_LINE.finditer(text):
        out.append((m.start(), _extend(text, m.end())))
    return out


__all__ = ["STREET_LINE", "address_spans"]
