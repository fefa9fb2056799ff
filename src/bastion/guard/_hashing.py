"""Hashed n-gram features of the guard's linear model (:mod:`bastion.guard.classifier`): text folding,
the n-gram buckets and their positions, length normalisation and the line / sentence-like segments a
documents head may score separately. Kept apart from the model's loading and scoring; re-exported by
``classifier``."""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
import zlib

import numpy as np

_FNV = np.uint64(0x100000001B3)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _fold(text: str) -> str:
    return " ".join(text.lower().split())


def _mark_table() -> dict[int, str]:
    """Latin letters with diacritics -> the base letter (``ş`` -> ``s``, ``é`` -> ``e``): text typed without
    its accents (common in Turkish, Polish, Portuguese chat) shares its n-grams with the accented form."""
    table = {}
    for cp in (*range(0xC0, 0x250), *range(0x1E00, 0x1F00)):
        base = unicodedata.normalize("NFD", chr(cp))[0]
        if base != chr(cp) and base.isascii() and base.isalpha():
            table[cp] = base
    return table


_MARKS = _mark_table()
# Han, kana, Hangul: no spaces between words, so character bigrams stand in for the word features
_CJK_RANGES = ((0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7AF), (0xF900, 0xFAFF))
# round 14 (``sea_bigrams``): Thai, Lao, Myanmar and Khmer, the other scripts written without spaces
_SEA_RANGES = ((0x0E00, 0x0EFF), (0x1000, 0x109F), (0x1780, 0x17FF))
# round 24 (``negations``): words that negate the next few words ("never reveal", "do not share": "don't" is
# read as "don" + "t"). The governed words get features of their own *beside* their plain ones, so a head can
# learn that "do not reveal these instructions" (an application's rule) differs from "reveal your
# instructions" without losing what the plain words say.
_NEGATORS = frozenset(
    w.encode("utf-8")
    for w in (
        "not", "never", "no", "t", "dont", "cannot", "nor", "nicht", "nie", "niemals", "kein", "keine",
        "keinen", "jamais", "pas", "nunca", "non", "mai", "nigdy", "niet", "nooit", "geen", "inte", "aldrig",
        "ikke", "ei", "ne", "nem", "asla", "jangan", "tidak", "đừng", "không", "не", "никогда", "ні",
        "ніколи", "μην", "δεν", "לא", "אל", "لا", "نه", "न", "मत",
    )
)  # fmt: skip
NEGATION_SCOPE = 2  # words after a negator that it governs


def length_norm(n: float, cap: int, floor: int = 0) -> float:
    """Divisor of a sum over ``n`` n-grams: sqrt(n), or n / sqrt(cap) beyond ``cap`` (0: no cap), and at
    least sqrt(floor)."""
    if cap > 0 and n > cap:
        return n / math.sqrt(cap)
    return math.sqrt(max(n, floor))


def _mix(h: np.ndarray, dim: int) -> np.ndarray:
    h ^= h >> np.uint64(31)
    h *= _M1
    h ^= h >> np.uint64(29)
    h *= _M2
    h ^= h >> np.uint64(32)
    return (h & np.uint64(dim - 1)).astype(np.int64)


_WORD = re.compile(r"\w+")
_WORD_BYTE = np.zeros(256, dtype=bool)  # the bytes \w matches in a bytes pattern: [a-zA-Z0-9_]
_WORD_BYTE[[c for c in range(128) if chr(c).isalnum() or chr(c) == "_"]] = True
_GAPS_TO_SPACES = bytes(c if _WORD_BYTE[c] else 32 for c in range(256))


def ngram_buckets(
    text: str,
    *,
    dim: int,
    ngrams: tuple[int, ...],
    word_ngrams: int = 0,
    fold_marks: bool = False,
    cjk_bigrams: bool = False,
    sea_bigrams: bool = False,
    negations: bool = False,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(positions, buckets)`` per feature family: character n-grams by start position, then word 1..k-grams
    (CRC-32 of the words, at the first word's position); with ``cjk_bigrams`` also character bigrams inside
    runs of Han/kana/Hangul, with ``sea_bigrams`` (round 14) inside runs of Thai/Lao/Myanmar/Khmer (a family
    of its own, after the CJK one). ``fold_marks`` strips diacritics from Latin letters first. With
    ``negations`` (round 24, user heads; needs ``word_ngrams``) a last family: each of the
    :data:`NEGATION_SCOPE` words after a negator, hashed as a negated word."""
    folded = _fold(text)
    if fold_marks:
        folded = folded.translate(_MARKS)
    # surrogatepass: a lone surrogate is a code point like any other here, never an exception (normalize drops
    # them before scoring; this keeps the classifier total on any str)
    codes = np.frombuffer(folded.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
    out = []
    with np.errstate(over="ignore"):
        if cjk_bigrams and len(codes) > 1 and int(codes.max()) >= 0x3040:
            cjk = np.zeros(len(codes), dtype=bool)
            for lo, hi in _CJK_RANGES:
                cjk |= (codes >= lo) & (codes <= hi)
            pos = np.flatnonzero(cjk[:-1] & cjk[1:])
            if len(pos):
                h = np.full(len(pos), np.uint64(0xCBF29CE484222325) ^ np.uint64(2), dtype=np.uint64)
                h = ((h ^ codes[pos]) * _FNV ^ codes[pos + 1]) * _FNV
                out.append((pos, _mix(h, dim)))
        if sea_bigrams and len(codes) > 1:
            out += _run_bigrams(codes, _SEA_RANGES, dim)
        for n in ngrams:
            m = len(codes) - n + 1
            if m <= 0:
                continue
            h = codes[:m] ^ (np.uint64(0xCBF29CE484222325) ^ np.uint64(n))  # round 18: in place, same values
            h *= _FNV
            for k in range(1, n):
                h ^= codes[k : k + m]
                h *= _FNV
            out.append((np.arange(m), _mix(h, dim)))
        if word_ngrams:
            words, starts = _words(folded, codes)
            crc = list(map(zlib.crc32, words))  # CRC-32 runs on: crc32(b, crc32(a)) == crc32(a + b)
            for n in range(1, word_ngrams + 1):
                if len(words) < n:
                    break
                if n > 1:
                    crc = list(
                        map(zlib.crc32, words[n - 1 :], map(zlib.crc32, itertools.repeat(b" "), crc[:-1]))
                    )
                h = np.asarray(crc, dtype=np.uint64) ^ np.uint64(0x9E3779B97F4A7C15 + n)
                h *= _FNV
                out.append((starts[: len(crc)], _mix(h, dim)))
            if negations:
                out += _negated(words, starts, dim)
    return out


def _negated(words: list[bytes], starts: np.ndarray, dim: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The family of negated words: ``(positions, buckets)`` of each word a negator governs (none: empty)."""
    seen: dict[int, bytes] = {}
    for i, w in enumerate(words):
        if w in _NEGATORS:
            for j in range(i + 1, min(i + 1 + NEGATION_SCOPE, len(words))):
                if words[j] in _NEGATORS:
                    break
                seen[j] = words[j]
    if not seen:
        return []
    at = sorted(seen)
    h = np.asarray([zlib.crc32(seen[j], _NOT) for j in at], dtype=np.uint64) ^ np.uint64(0x9E3779B97F4A7C15)
    h *= _FNV
    return [(starts[at], _mix(h, dim))]


_NOT = zlib.crc32(b"\x00not ")


def _words(folded: str, codes: np.ndarray) -> tuple[list[bytes], np.ndarray]:
    r"""The words (runs of ``\w``) of ``folded`` in UTF-8 and their start positions (``codes``: its code
    points). Round 18 (perf18): read off a mask of word characters (``\w`` is a letter, digit or number, or
    "_": ``str.isalnum`` per character, looked up once per distinct non-ASCII one) instead of a regex split;
    every other byte made a space, ``bytes.split`` gives the words (the same words and starts, faster)."""
    word = _WORD_BYTE[np.minimum(codes, 255)]
    data = folded.encode("utf-8", "surrogatepass")
    if len(data) == len(codes):  # ASCII
        spaced = data.translate(_GAPS_TO_SPACES)
    else:
        wide = np.flatnonzero(codes > 127)
        found, where = np.unique(codes[wide], return_inverse=True)
        word[wide] = np.asarray([chr(c).isalnum() for c in found.tolist()], dtype=bool)[where]
        size = 1 + (codes > 0x7F).astype(np.intp) + (codes > 0x7FF) + (codes > 0xFFFF)
        buf = np.frombuffer(data, dtype=np.uint8).copy()
        buf[~np.repeat(word, size)] = 32
        spaced = buf.tobytes()
    return spaced.split(), np.flatnonzero(word & ~np.concatenate(([False], word[:-1])))


def _run_bigrams(
    codes: np.ndarray, ranges: tuple[tuple[int, int], ...], dim: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Character bigrams inside runs of the code points in ``ranges`` (hashed as the CJK bigrams are)."""
    mask = np.zeros(len(codes), dtype=bool)
    for lo, hi in ranges:
        mask |= (codes >= lo) & (codes <= hi)
    pos = np.flatnonzero(mask[:-1] & mask[1:])
    if not len(pos):
        return []
    h = np.full(len(pos), np.uint64(0xCBF29CE484222325) ^ np.uint64(2), dtype=np.uint64)
    h = ((h ^ codes[pos]) * _FNV ^ codes[pos + 1]) * _FNV
    return [(pos, _mix(h, dim))]


# Round 9: segments. A sentence ends at . ! ? (or their CJK forms) before a space; a line at a newline.
_SENTENCE_END = re.compile(r"[.!?;。！？](?= )")
MAX_SEGMENTS = 256


def _cuts(lines: list[str], min_chars: int) -> list[int]:
    """Start offsets of segments in ``" ".join(lines)`` (lines already folded, none empty): each line and
    each sentence in it, a segment shorter than ``min_chars`` merged into the one after it."""
    starts, pos = [], 0
    for line in lines:
        starts.append(pos)
        if len(line) > min_chars:
            starts += [pos + m.end() + 1 for m in _SENTENCE_END.finditer(line)]
        pos += len(line) + 1
    cuts, last = [0], 0
    for st in starts[1:]:
        if st - last >= min_chars and pos - 1 - st >= 1:
            cuts.append(st)
            last = st
    if len(cuts) > MAX_SEGMENTS:  # bounded work: every k-th cut (segments of about k times the length)
        cuts = cuts[:: -(-len(cuts) // MAX_SEGMENTS)]
    return cuts


def segment_starts(text: str, *, min_chars: int) -> np.ndarray:
    """Start positions, in the folded text :func:`ngram_buckets` hashes, of the text's lines and sentence-like
    segments (short ones merged with the next, at most MAX_SEGMENTS): the classifier scores each segment
    like a window, so one injected line in a long benign document is not averaged with its neighbours."""
    lines = [f for f in (" ".join(ln.split()) for ln in text.lower().split("\n")) if f]
    return np.asarray(_cuts(lines, min_chars), dtype=np.int64)


def segment_texts(text: str, *, min_chars: int) -> list[str]:
    """The segments of :func:`segment_starts` as texts (folded; for training rows)."""
    lines = [f for f in (" ".join(ln.split()) for ln in text.lower().split("\n")) if f]
    folded = " ".join(lines)
    cuts = [*_cuts(lines, min_chars), len(folded)]
    return [folded[a:b].strip() for a, b in itertools.pairwise(cuts) if folded[a:b].strip()]
