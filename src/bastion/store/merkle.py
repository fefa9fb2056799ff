"""RFC 6962 Merkle tree hashing, audit paths and consistency proofs, with the RFC 9162 verifiers.

Implements RFC 6962 §2.1 (Merkle Tree Hash with domain separation: leaf = SHA-256(0x00 ‖ data),
node = SHA-256(0x01 ‖ left ‖ right); split at the largest power of two smaller than n), §2.1.1 audit paths and
§2.1.2 consistency proofs, and verifies them with the iterative algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2.
No deviation, except that a consistency proof from size 0 is the empty proof (RFC 9162 leaves it undefined).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from bastion.errors import IntegrityError, InvalidInput

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes (recursive definition of RFC 6962 §2.1)."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = _split(n)
    return node_hash(root_of(leaves[:k]), root_of(leaves[k:]))


# --- compact range ("frontier"): the perfect-subtree roots covering [0, n), largest first -----------------


def frontier_append(frontier: Sequence[bytes], size: int, leaf: bytes) -> list[bytes]:
    """The frontier of size+1 leaves from the frontier of ``size`` leaves."""
    heights = [i for i in range(size.bit_length() - 1, -1, -1) if size >> i & 1]
    if len(heights) != len(frontier):
        raise IntegrityError("audit log: cached frontier does not match the tree size")
    stack = list(zip(heights, frontier, strict=True))
    stack.append((0, leaf))
    while len(stack) >= 2 and stack[-1][0] == stack[-2][0]:
        h, right = stack.pop()
        _, left = stack.pop()
        stack.append((h + 1, node_hash(left, right)))
    return [h for _, h in stack]


def frontier_root(frontier: Sequence[bytes]) -> bytes:
    if not frontier:
        return EMPTY_ROOT
    root = frontier[-1]
    for h in reversed(frontier[:-1]):
        root = node_hash(h, root)
    return root


def pack(hashes: Sequence[bytes]) -> bytes:
    return b"".join(hashes)


def unpack(blob: bytes) -> list[bytes]:
    if len(blob) % HASH_SIZE:
        raise IntegrityError("audit log: malformed hash list")
    return [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]


# --- proofs (RFC 6962 §2.1.1, §2.1.2) ----------------------------------------------------------------------


def inclusion_path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]): the audit path of leaf ``index``."""
    n = len(leaves)
    if not 0 <= index < n:
        raise InvalidInput(f"leaf index {index} is outside a tree of size {n}")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*inclusion_path(index, leaves[:k]), root_of(leaves[k:])]
    return [*inclusion_path(index - k, leaves[k:]), root_of(leaves[:k])]


def _subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [root_of(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], complete), root_of(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), root_of(leaves[:k])]


def consistency_path(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]): proves the tree of ``old_size`` leaves is a prefix of the tree over ``leaves``."""
    n = len(leaves)
    if not 0 <= old_size <= n:
        raise InvalidInput(f"old size {old_size} must be between 0 and {n}")
    if old_size in (0, n):
        return []
    return _subproof(old_size, leaves, True)


# --- verifiers (RFC 9162 §2.1.3.2, §2.1.4.2) ---------------------------------------------------------------


def verify_inclusion(*, leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes) -> None:
    """Raise IntegrityError unless ``path`` proves leaf hash ``leaf`` is entry ``index`` of tree ``root``."""
    if not 0 <= index < size:
        raise IntegrityError("inclusion proof: index outside the tree")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise IntegrityError("inclusion proof: path too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise IntegrityError("inclusion proof does not verify")


def verify_consistency(
    *, old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]
) -> None:
    """Raise IntegrityError unless ``path`` proves tree ``old_root`` is a prefix of tree ``new_root``."""
    if not 0 <= old_size <= new_size:
        raise IntegrityError("consistency proof: sizes out of order")
    if old_size == new_size:
        if path or old_root != new_root:
            raise IntegrityError("consistency proof does not verify")
        return
    if old_size == 0:
        if path or old_root != EMPTY_ROOT:
            raise IntegrityError("consistency proof does not verify")
        return
    proof = list(path)
    if old_size & (old_size - 1) == 0:
        proof.insert(0, old_root)
    if not proof:
        raise IntegrityError("consistency proof: empty path")
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            raise IntegrityError("consistency proof: path too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != old_root or sr != new_root:
        raise IntegrityError("consistency proof does not verify")


__all__ = [
    "EMPTY_ROOT",
    "consistency_path",
    "frontier_append",
    "frontier_root",
    "inclusion_path",
    "leaf_hash",
    "node_hash",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]
