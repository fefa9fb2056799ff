"""RFC 6962 / Certificate Transparency known-answer vectors for bastion.store.merkle.

The vectors (``vectors/rfc6962_ct.json``) are the CT test data published with transparency-dev/merkle: roots
for every tree size 0–8 over eight fixed leaves, the leaf hashes, five inclusion proofs and five
consistency proofs. Each valid proof must be produced by bastion (byte for byte) and must verify; each
corrupted variant (the probes transparency-dev's verifier tests use: wrong index or size, wrong leaf or
root, garbage before or after, a flipped bit, a dropped or inserted node) must be rejected.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bastion.errors import IntegrityError
from bastion.store import merkle

VECTORS = json.loads((Path(__file__).parent / "vectors" / "rfc6962_ct.json").read_text(encoding="utf-8"))
LEAVES = [bytes.fromhex(h) for h in VECTORS["leaves_hex"]]
LEAF_HASHES = [merkle.leaf_hash(d) for d in LEAVES]
ROOTS = {0: bytes.fromhex(VECTORS["empty_root"])} | {
    int(k): bytes.fromhex(v) for k, v in VECTORS["roots_by_size"].items()
}
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def _hexes(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


def test_leaf_hashes() -> None:
    assert [h.hex() for h in LEAF_HASHES] == VECTORS["leaf_hashes"]


@pytest.mark.parametrize("size", range(9))
def test_root_for_every_size(size: int) -> None:
    assert merkle.root_of(LEAF_HASHES[:size]) == ROOTS[size]
    frontier: list[bytes] = []
    for i, leaf in enumerate(LEAF_HASHES[:size]):
        frontier = merkle.frontier_append(frontier, i, leaf)
    if size:
        assert merkle.frontier_root(frontier) == ROOTS[size]


def _inclusion_probes(index: int, size: int, path: list[bytes], root: bytes, leaf: bytes) -> list[Any]:
    probes = [
        (index - 1, size, root, leaf, path, "index - 1"),
        (index + 1, size, root, leaf, path, "index + 1"),
        (index ^ 2, size, root, leaf, path, "index ^ 2"),
        (index, size * 2, root, leaf, path, "size * 2"),
        (index, size // 2, root, leaf, path, "size / 2"),
        (index, size, root, b"WrongLeaf", path, "wrong leaf"),
        (index, size, ROOTS[0], leaf, path, "empty root"),
        (index, size, SOME_HASH, leaf, path, "random root"),
        (index, size, root, leaf, [*path, b""], "trailing garbage"),
        (index, size, root, leaf, [*path, root], "trailing root"),
        (index, size, root, leaf, [b"", *path], "preceding garbage"),
        (index, size, root, leaf, [root, *path], "preceding root"),
    ]
    for i in range(len(path)):
        wrong = list(path)
        wrong[i] = bytes([wrong[i][0] ^ 8]) + wrong[i][1:]
        probes.append((index, size, root, leaf, wrong, f"bit flip in path[{i}]"))
    if path:
        probes.append((index, size, root, leaf, path[:-1], "removed node"))
    if len(path) > 1:
        probes.append((index, size, root, leaf, [path[0], SOME_HASH, *path[1:]], "inserted node"))
    return probes


@pytest.mark.parametrize("vec", VECTORS["inclusion"], ids=lambda v: f"leaf{v['index']}-of-{v['size']}")
def test_inclusion_vectors(vec: dict[str, Any]) -> None:
    index, size, path = vec["index"], vec["size"], _hexes(vec["path"])
    leaf, root = LEAF_HASHES[index], ROOTS[size]
    assert merkle.inclusion_path(index, LEAF_HASHES[:size]) == path  # bastion produces the CT proof
    merkle.verify_inclusion(leaf=leaf, index=index, size=size, path=path, root=root)
    accepted = []
    for i, s, r, lf, p, desc in _inclusion_probes(index, size, path, root, leaf):
        try:
            merkle.verify_inclusion(leaf=lf, index=i, size=s, path=p, root=r)
        except IntegrityError:
            continue
        accepted.append(desc)
    assert accepted == []


def _consistency_probes(m: int, n: int, r1: bytes, r2: bytes, path: list[bytes]) -> list[Any]:
    probes = [
        (m - 1, n, r1, r2, path, "old size - 1"),
        (m + 1, n, r1, r2, path, "old size + 1"),
        (m ^ 2, n, r1, r2, path, "old size ^ 2"),
        (m, n * 2, r1, r2, path, "new size * 2"),
        (m, n // 2, r1, r2, path, "new size / 2"),
        (m, n, b"WrongRoot", r2, path, "wrong old root"),
        (m, n, r1, b"WrongRoot", path, "wrong new root"),
        (m, n, r2, r1, path, "swapped roots"),
        (m, n, r1, r2, [], "empty proof"),
        (m, n, r1, r2, [*path, b""], "trailing garbage"),
        (m, n, r1, r2, [*path, r1], "trailing old root"),
        (m, n, r1, r2, [*path, r2], "trailing new root"),
        (m, n, r1, r2, [b"", *path], "preceding garbage"),
        (m, n, r1, r2, [r1, *path], "preceding old root"),
        (m, n, r1, r2, [r2, *path], "preceding new root"),
        (m, n, r1, r2, [path[0], *path], "preceding path[0]"),
        (m, n, r1, r2, path[:-1], "truncated"),
    ]
    for i in range(len(path)):
        wrong = list(path)
        wrong[i] = bytes([wrong[i][0] ^ 16]) + wrong[i][1:]
        probes.append((m, n, r1, r2, wrong, f"bit flip in path[{i}]"))
    return probes


@pytest.mark.parametrize("vec", VECTORS["consistency"], ids=lambda v: f"{v['old_size']}-to-{v['new_size']}")
def test_consistency_vectors(vec: dict[str, Any]) -> None:
    m, n, path = vec["old_size"], vec["new_size"], _hexes(vec["path"])
    r1, r2 = ROOTS[m], ROOTS[n]
    assert merkle.consistency_path(m, LEAF_HASHES[:n]) == path  # bastion produces the CT proof
    merkle.verify_consistency(old_size=m, new_size=n, old_root=r1, new_root=r2, path=path)
    if not path:
        return  # m == n: nothing to corrupt (transparency-dev tests only non-trivial proofs this way)
    accepted = []
    for a, b, x, y, p, desc in _consistency_probes(m, n, r1, r2, path):
        try:
            merkle.verify_consistency(old_size=a, new_size=b, old_root=x, new_root=y, path=p)
        except IntegrityError:
            continue
        accepted.append(desc)
    assert accepted == []


@pytest.mark.parametrize(
    ("m", "n", "r1", "r2", "path", "ok"),
    [
        (0, 0, ROOTS[0], ROOTS[0], [], True),
        (0, 8, ROOTS[0], ROOTS[8], [], True),  # the empty tree is a prefix of every tree
        (1, 1, ROOTS[1], ROOTS[1], [], True),
        (1, 1, ROOTS[1], ROOTS[2], [], False),  # same size, different roots
        (1, 0, ROOTS[1], ROOTS[0], [], False),  # time travel
        (2, 1, ROOTS[2], ROOTS[1], [], False),
        (1, 2, ROOTS[1], ROOTS[2], [], False),  # a proof is needed
        (0, 0, ROOTS[0], ROOTS[0], [ROOTS[0]], False),  # equal roots but a non-empty proof
        (1, 1, ROOTS[1], ROOTS[1], [ROOTS[0]], False),
    ],
)
def test_consistency_edge_cases(m: int, n: int, r1: bytes, r2: bytes, path: list[bytes], ok: bool) -> None:
    if ok:
        merkle.verify_consistency(old_size=m, new_size=n, old_root=r1, new_root=r2, path=path)
    else:
        with pytest.raises(IntegrityError):
            merkle.verify_consistency(old_size=m, new_size=n, old_root=r1, new_root=r2, path=path)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 0), (2, 1)])
def test_inclusion_outside_the_tree_is_rejected(index: int, size: int) -> None:
    with pytest.raises(IntegrityError):
        merkle.verify_inclusion(leaf=SOME_HASH, index=index, size=size, path=[], root=ROOTS[0])
