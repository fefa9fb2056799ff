"""RFC 6962 hashing and proofs, checked against a naive reference and with tampered proofs."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.errors import IntegrityError
from bastion.store import merkle


def naive_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 written directly on the data, independent of the module's helpers."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + naive_root(leaves[:k]) + naive_root(leaves[k:])).digest()


def test_known_vectors() -> None:
    # RFC 6962 test data used by Certificate Transparency implementations (empty tree, one empty leaf).
    assert merkle.root_of([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle.leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"


# unique leaves: with duplicates a proof for one index legitimately verifies for another
datas = st.lists(st.binary(max_size=8), min_size=1, max_size=40, unique=True)


@settings(max_examples=40, deadline=None)
@given(datas)
def test_root_and_frontier_match_naive_reference(data: list[bytes]) -> None:
    leaves = [merkle.leaf_hash(d) for d in data]
    assert merkle.root_of(leaves) == naive_root(data)
    frontier: list[bytes] = []
    for i, leaf in enumerate(leaves):
        frontier = merkle.frontier_append(frontier, i, leaf)
        assert merkle.frontier_root(frontier) == naive_root(data[: i + 1])


@settings(max_examples=40, deadline=None)
@given(datas, st.data())
def test_inclusion_proofs_verify_and_tampering_fails(data: list[bytes], draw: st.DataObject) -> None:
    leaves = [merkle.leaf_hash(d) for d in data]
    root = naive_root(data)
    index = draw.draw(st.integers(0, len(leaves) - 1))
    path = merkle.inclusion_path(index, leaves)
    merkle.verify_inclusion(leaf=leaves[index], index=index, size=len(leaves), path=path, root=root)
    with pytest.raises(IntegrityError):
        merkle.verify_inclusion(
            leaf=merkle.leaf_hash(b"other"), index=index, size=len(leaves), path=path, root=root
        )
    if path:
        bad = list(path)
        j = draw.draw(st.integers(0, len(bad) - 1))
        bad[j] = bytes([bad[j][0] ^ 1]) + bad[j][1:]
        with pytest.raises(IntegrityError):
            merkle.verify_inclusion(leaf=leaves[index], index=index, size=len(leaves), path=bad, root=root)
        with pytest.raises(IntegrityError):
            merkle.verify_inclusion(
                leaf=leaves[index], index=index, size=len(leaves), path=path[:-1], root=root
            )
    if len(leaves) > 1:
        other = (index + 1) % len(leaves)
        with pytest.raises(IntegrityError):
            merkle.verify_inclusion(leaf=leaves[index], index=other, size=len(leaves), path=path, root=root)


@settings(max_examples=40, deadline=None)
@given(datas, st.data())
def test_consistency_proofs_verify_and_tampering_fails(data: list[bytes], draw: st.DataObject) -> None:
    leaves = [merkle.leaf_hash(d) for d in data]
    old = draw.draw(st.integers(0, len(leaves)))
    path = merkle.consistency_path(old, leaves)
    old_root, new_root = naive_root(data[:old]), naive_root(data)
    merkle.verify_consistency(
        old_size=old, new_size=len(leaves), old_root=old_root, new_root=new_root, path=path
    )
    if 0 < old < len(leaves):
        with pytest.raises(IntegrityError):
            merkle.verify_consistency(
                old_size=old,
                new_size=len(leaves),
                old_root=naive_root([b"x-never-generated", *data[1:old]]),
                new_root=new_root,
                path=path,
            )
        forked = [*data[:old], b"fork-never-generated", *data[old + 1 :]]
        with pytest.raises(IntegrityError):
            merkle.verify_consistency(
                old_size=old, new_size=len(leaves), old_root=old_root, new_root=naive_root(forked), path=path
            )
        if path:
            bad = list(path)
            bad[0] = bytes([bad[0][0] ^ 1]) + bad[0][1:]
            with pytest.raises(IntegrityError):
                merkle.verify_consistency(
                    old_size=old, new_size=len(leaves), old_root=old_root, new_root=new_root, path=bad
                )
