"""FF1 against every NIST SP 800-38G sample, plus round-trip properties and the domain checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.data._ff1 import ALPHABET, FF1
from bastion.errors import InvalidInput

SAMPLES = json.loads((Path(__file__).parent / "vectors" / "ff1_nist_samples.json").read_text())["samples"]


@pytest.mark.parametrize("v", SAMPLES, ids=[f"sample{v['sample']}" for v in SAMPLES])
def test_nist_sample(v: dict) -> None:
    ff1 = FF1(bytes.fromhex(v["key"]), v["radix"])
    tweak = bytes.fromhex(v["tweak"])
    assert ff1.encrypt(v["pt"], tweak) == v["ct"]
    assert ff1.decrypt(v["ct"], tweak) == v["pt"]


def test_all_key_sizes_and_both_radixes_are_covered() -> None:
    assert {len(v["key"]) // 2 for v in SAMPLES} == {16, 24, 32}
    assert {v["radix"] for v in SAMPLES} == {10, 36}
    assert len(SAMPLES) == 9


@settings(max_examples=60, deadline=None)
@given(
    radix=st.sampled_from([10, 16, 36]),
    data=st.data(),
    tweak=st.binary(max_size=20),
)
def test_round_trip_and_format(radix: int, data: st.DataObject, tweak: bytes) -> None:
    alphabet = ALPHABET[:radix]
    min_len = {10: 6, 16: 5, 36: 4}[radix]
    x = data.draw(st.text(alphabet=alphabet, min_size=min_len, max_size=40))
    ff1 = FF1(bytes(range(16)), radix)
    ct = ff1.encrypt(x, tweak)
    assert len(ct) == len(x) and set(ct) <= set(alphabet)
    assert ff1.decrypt(ct, tweak) == x


def test_tweak_changes_ciphertext() -> None:
    ff1 = FF1(bytes(32), 10)
    assert ff1.encrypt("4111111111111111", b"a") != ff1.encrypt("4111111111111111", b"b")


@pytest.mark.parametrize("bad", ["12345", "1", ""])
def test_domain_below_one_million_is_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        FF1(bytes(16), 10).encrypt(bad)


def test_bad_key_radix_and_alphabet() -> None:
    with pytest.raises(InvalidInput):
        FF1(bytes(15), 10)
    with pytest.raises(InvalidInput):
        FF1(bytes(16), 37)
    with pytest.raises(InvalidInput):
        FF1(bytes(16), 10).encrypt("12345a789")
