"""FF1 format-preserving encryption (NIST SP 800-38G, Algorithm 7 and 8).

Built on ``cryptography``'s AES in ECB mode, used only as the single-block cipher CIPH_K from which the
standard's PRF (CBC-MAC with a zero IV) is chained block by block. FF3/FF3-1 is withdrawn and not offered.

Deviations from the standard: none in the algorithm. The alphabet is fixed to the first ``radix`` characters
of ``0-9a-z`` (radix 2..36, as in NIST's samples), and the domain must hold at least one million values
(``radix ** len >= 1_000_000``, the minimum of SP 800-38G Rev. 1), which rejects short inputs that a
brute-force search over the whole domain would break.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bastion.errors import InvalidInput

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
MIN_DOMAIN = 1_000_000
MAX_LEN = 4096


def _num(x: str, radix: int) -> int:
    return int(x, radix) if x else 0


def _str(value: int, radix: int, length: int) -> str:
    if radix == 10:
        return f"{value:0{length}d}"
    out = []
    for _ in range(length):
        value, r = divmod(value, radix)
        out.append(ALPHABET[r])
    return "".join(reversed(out))


class FF1:
    """FF1 over numeral strings of one radix. ``key`` is an AES key of 16, 24 or 32 bytes."""

    def __init__(self, key: bytes, radix: int = 10) -> None:
        if len(key) not in (16, 24, 32):
            raise InvalidInput("FF1 needs an AES key of 16, 24 or 32 bytes")
        if not 2 <= radix <= len(ALPHABET):
            raise InvalidInput(f"FF1 radix must be 2..{len(ALPHABET)}")
        self.radix = radix
        self._ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - CIPH_K block only
        self._alphabet = set(ALPHABET[:radix])

    def _ciph(self, block: bytes) -> bytes:
        return self._ecb.update(block)

    def _prf(self, data: bytes) -> bytes:
        y = bytes(16)
        for j in range(0, len(data), 16):
            block = data[j : j + 16]
            y = self._ciph(bytes(a ^ b for a, b in zip(y, block, strict=True)))
        return y

    def _check(self, x: str) -> None:
        n = len(x)
        if n < 2 or n > MAX_LEN:
            raise InvalidInput(f"FF1 input length must be 2..{MAX_LEN}")
        if self.radix**n < MIN_DOMAIN:
            raise InvalidInput(f"FF1 domain too small: radix**length must be at least {MIN_DOMAIN}")
        if not set(x) <= self._alphabet:
            raise InvalidInput(f"FF1 input has characters outside the radix-{self.radix} alphabet")

    def _setup(self, n: int, tweak: bytes) -> tuple[int, int, int, int, bytes]:
        u = n // 2
        v = n - u
        b = ((self.radix**v - 1).bit_length() + 7) // 8
        d = 4 * ((b + 3) // 4) + 4
        p = (
            bytes([1, 2, 1])
            + self.radix.to_bytes(3, "big")
            + bytes([10, u % 256])
            + n.to_bytes(4, "big")
            + len(tweak).to_bytes(4, "big")
        )
        return u, v, b, d, p

    def _round(self, p: bytes, tweak: bytes, i: int, num: int, b: int, d: int) -> int:
        pad = (-len(tweak) - b - 1) % 16
        q = tweak + bytes(pad) + bytes([i]) + num.to_bytes(b, "big")
        r = self._prf(p + q)
        s = r
        for j in range(1, (d + 15) // 16):
            s += self._ciph(bytes(a ^ c for a, c in zip(r, j.to_bytes(16, "big"), strict=True)))
        return int.from_bytes(s[:d], "big")

    def encrypt(self, x: str, tweak: bytes = b"") -> str:
        self._check(x)
        n = len(x)
        u, v, b, d, p = self._setup(n, tweak)
        a, bb = x[:u], x[u:]
        mod_u, mod_v = self.radix**u, self.radix**v
        for i in range(10):
            y = self._round(p, tweak, i, _num(bb, self.radix), b, d)
            m, mod = (u, mod_u) if i % 2 == 0 else (v, mod_v)
            c = (_num(a, self.radix) + y) % mod
            a, bb = bb, _str(c, self.radix, m)
        return a + bb

    def decrypt(self, x: str, tweak: bytes = b"") -> str:
        self._check(x)
        n = len(x)
        u, v, b, d, p = self._setup(n, tweak)
        a, bb = x[:u], x[u:]
        mod_u, mod_v = self.radix**u, self.radix**v
        for i in range(9, -1, -1):
            y = self._round(p, tweak, i, _num(a, self.radix), b, d)
            m, mod = (u, mod_u) if i % 2 == 0 else (v, mod_v)
            c = (_num(bb, self.radix) - y) % mod
            a, bb = _str(c, self.radix, m), a
        return a + bb


__all__ = ["ALPHABET", "FF1", "MIN_DOMAIN"]
