"""Signing: manifests with OpenSSF model-signing (EC P-256), tree heads and reports with Ed25519.

*Manifests.* :meth:`SigningKeys.sign_directory` signs a directory with the ``model-signing`` library (1.1,
"private key" method: a DSSE envelope over an in-toto statement listing each file's SHA-256, in a Sigstore
bundle). The hashing configuration is the one the upstream CLI uses by default (file serialisation, SHA-256,
no symlinks, git paths and the signature file itself ignored), so a signed directory also verifies with::

    model_signing verify key DIR --signature SIG --public_key manifest-key.pub.pem

:func:`verify_directory` is stricter than the CLI: it also refuses a directory that holds ignored git paths
(files no signature covers), and every failure (edited, extra or missing file, wrong key, damaged signature,
symlink) raises :class:`IntegrityError`.

*Tree heads and reports.* :class:`Ed25519Signer` (RFC 8032 via ``cryptography``).

*Storage.* ``<home>/signing/``: ``manifest-key.pem`` and ``tree-key.pem`` are PKCS#8 PEM encrypted with
``BestAvailableEncryption`` under a secret derived from the passphrase with Argon2id (salt and parameters in
``params.json``); ``manifest-key.pub.pem`` and ``tree-key.pub.pem`` are plain public keys. Files are written
atomically with mode 0600 (private) / 0644 (public).

Length: the home's key files, manifest signing/verification and tree-head signing share one key-file
format and its checks; splitting them would spread that format over several modules.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from bastion.crypto.kdf import SALT_SIZE, KdfParams, derive_key
from bastion.errors import ConfigError, Conflict, IntegrityError, InvalidInput, WrongPassphrase
from bastion.files import atomic_write

if TYPE_CHECKING:
    from bastion.crypto.seal import RowSealer

SIGNING_DIR = "signing"
MANIFEST_KEY = "manifest-key.pem"
MANIFEST_PUB = "manifest-key.pub.pem"
TREE_KEY = "tree-key.pem"
TREE_PUB = "tree-key.pub.pem"
PARAMS = "params.json"
_GIT_PATHS = (".git", ".github", ".gitignore", ".gitattributes")


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] if text else type(exc).__name__


# -- Ed25519 -------------------------------------------------------------------------------------------------
class Ed25519Verifier:
    """Verifies Ed25519 signatures with a public key only (an auditor needs nothing else)."""

    def __init__(self, public_key: ed25519.Ed25519PublicKey) -> None:
        self._public = public_key

    @classmethod
    def from_pem(cls, pem: bytes | str) -> Ed25519Verifier:
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise InvalidInput("not a PEM public key") from exc
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise InvalidInput("not an Ed25519 public key")
        return cls(key)

    def verify(self, data: bytes, signature: bytes) -> None:
        """Return None when ``signature`` is valid for ``data``; raise :class:`IntegrityError` otherwise."""
        try:
            self._public.verify(bytes(signature), bytes(data))
        except (InvalidSignature, ValueError, TypeError) as exc:
            raise IntegrityError("Ed25519 signature does not verify") from exc

    def public_key_pem(self) -> str:
        return self._public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")


class Ed25519Signer(Ed25519Verifier):
    """Signs tree heads and reports."""

    def __init__(self, private_key: ed25519.Ed25519PrivateKey) -> None:
        super().__init__(private_key.public_key())
        self._private = private_key

    @classmethod
    def generate(cls) -> Ed25519Signer:
        return cls(ed25519.Ed25519PrivateKey.generate())

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(bytes(data))


# -- manifests -----------------------------------------------------------------------------------------------
def _hashing_config(directory: Path, signature_path: Path) -> Any:
    import model_signing.hashing

    rel = _relative_inside(signature_path, directory)
    return model_signing.hashing.Config().set_ignored_paths(paths=[rel] if rel else [], ignore_git_paths=True)


def _relative_inside(path: Path, directory: Path) -> str | None:
    """``path`` relative to ``directory`` (POSIX) when it lies inside it, else None."""
    try:
        return path.resolve().relative_to(directory.resolve()).as_posix()
    except ValueError:
        return None


def _check_directory(directory: Path) -> Path:
    directory = Path(directory)
    if not directory.is_dir():
        raise InvalidInput(f"not a directory: {directory}")
    return directory


@dataclass(frozen=True)
class DirectoryManifest:
    """Per-file SHA-256 digests of a directory (relative POSIX paths), and one digest over them all."""

    files: dict[str, str]
    digest: str

    def to_dict(self) -> dict[str, Any]:
        return {"files": dict(self.files), "digest": self.digest}


def directory_manifest(
    *, directory: str | os.PathLike[str], exclude: tuple[str, ...] = ()
) -> DirectoryManifest:
    """The per-file SHA-256 digests model-signing signs; ``digest`` = SHA-256 of their canonical JSON.

    ``exclude``: relative POSIX paths left out (e.g. a signature file kept inside the directory).
    """
    import model_signing.hashing

    root = _check_directory(Path(directory))
    try:
        config = model_signing.hashing.Config().set_ignored_paths(paths=list(exclude), ignore_git_paths=False)
        manifest = config.hash(root)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot hash {root}: {_short(exc)}") from exc
    files = {rd.identifier: rd.digest.digest_hex for rd in manifest.resource_descriptors()}
    return _directory_manifest_of(files)


def _directory_manifest_of(files: dict[str, str]) -> DirectoryManifest:
    canonical = json.dumps(files, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return DirectoryManifest(files=dict(files), digest="sha256:" + hashlib.sha256(canonical).hexdigest())


def _signable_files(root: Path, sig: Path) -> set[str]:
    """The relative POSIX paths model-signing would hash under ``root`` (symlinks and odd files refused)."""
    skip = _relative_inside(sig, root)
    found: set[str] = set()
    for p in root.rglob("*"):
        if p.is_symlink():
            raise InvalidInput(f"refusing to sign {root}: {p} is a symbolic link")
        rel = p.relative_to(root).as_posix()
        if p.is_file():
            if rel != skip:
                found.add(rel)
        elif not p.is_dir():
            raise InvalidInput(f"refusing to sign {root}: {p} is not a regular file or directory")
    return found


def verify_directory(
    *,
    directory: str | os.PathLike[str],
    signature_path: str | os.PathLike[str],
    public_key_path: str | os.PathLike[str],
) -> None:
    """Verify a directory against a model-signing signature and an EC public key (PEM file).

    Raises :class:`IntegrityError` on any mismatch; returns None on success.
    """
    import model_signing.verifying

    root = _check_directory(Path(directory))
    sig = Path(signature_path)
    present = [name for name in _GIT_PATHS if (root / name).exists()]
    if present:
        raise IntegrityError(f"unsigned files in {root}: {', '.join(present)}")
    try:
        config = model_signing.verifying.Config().use_elliptic_key_verifier(public_key=Path(public_key_path))
        config.set_hashing_config(_hashing_config(root, sig)).verify(root, sig)
    except Exception as exc:  # model-signing raises ValueError, KeyError, protobuf and JSON errors alike
        raise IntegrityError(f"manifest signature does not verify for {root.name}: {_short(exc)}") from exc


# -- keys in the home ----------------------------------------------------------------------------------------
def _write_private(path: Path, key: Any, secret: bytes) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(secret),
    )
    atomic_write(path, pem, mode=0o600)


def _write_public(path: Path, key: Any) -> None:
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    atomic_write(path, pem, mode=0o600)


MAX_SIGNING_FILE_BYTES = 64 << 10  # a PEM or params.json is well under 1 KiB


def _read_home_file(path: Path) -> bytes:
    """A file of ``signing/``: regular, no link followed, never blocks (FIFO), at most 64 KiB."""
    from bastion.files import read_regular_file

    return read_regular_file(path, limit=MAX_SIGNING_FILE_BYTES)


def _load_private(path: Path, secret: bytes) -> Any:
    try:
        data = _read_home_file(path)
    except FileNotFoundError as exc:
        raise ConfigError(f"missing signing key {path}", hint="run 'bastion init' first") from exc
    try:
        return serialization.load_pem_private_key(data, password=secret)
    except ValueError as exc:
        raise WrongPassphrase("the signing keys did not open: wrong passphrase or damaged key file") from exc
    except TypeError as exc:
        raise IntegrityError(f"signing key {path.name} is not encrypted") from exc


class SigningKeys:
    """The home's signing keys: EC P-256 for manifests, Ed25519 for tree heads and reports."""

    def __init__(
        self, directory: Path, *, manifest_key: ec.EllipticCurvePrivateKey, secret: bytes, tree: Ed25519Signer
    ) -> None:
        self.directory = directory
        self._manifest_key = manifest_key
        self._secret = secret
        self.tree = tree

    @staticmethod
    def _secret_from(passphrase: str, *, salt: bytes, kdf: KdfParams) -> bytes:
        # the PEM password: hex of a passphrase-derived key (PKCS#8 PBES2 then encrypts the key file)
        return derive_key(passphrase, salt=salt, params=kdf).hex().encode("ascii")

    @classmethod
    def create(
        cls, home: str | os.PathLike[str], passphrase: str, *, kdf: KdfParams | None = None
    ) -> SigningKeys:
        """Generate both key pairs under ``<home>/signing``; refuses to overwrite existing keys."""
        directory = Path(home) / SIGNING_DIR
        if (directory / PARAMS).exists():
            raise Conflict(f"signing keys already exist in {directory}")
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        params = kdf or KdfParams()
        salt = os.urandom(SALT_SIZE)
        secret = cls._secret_from(passphrase, salt=salt, kdf=params)
        manifest_key = ec.generate_private_key(ec.SECP256R1())
        tree_key = ed25519.Ed25519PrivateKey.generate()
        _write_private(directory / MANIFEST_KEY, manifest_key, secret)
        _write_public(directory / MANIFEST_PUB, manifest_key.public_key())
        _write_private(directory / TREE_KEY, tree_key, secret)
        _write_public(directory / TREE_PUB, tree_key.public_key())
        doc = {"kdf": params.to_dict(), "salt": base64.b64encode(salt).decode("ascii")}
        atomic_write(directory / PARAMS, json.dumps(doc, sort_keys=True).encode("utf-8"), mode=0o600)
        return cls(directory, manifest_key=manifest_key, secret=secret, tree=Ed25519Signer(tree_key))

    @classmethod
    def open(cls, home: str | os.PathLike[str], passphrase: str) -> SigningKeys:
        """Load both private keys; a wrong passphrase raises :class:`WrongPassphrase`."""
        directory = Path(home) / SIGNING_DIR
        try:
            doc = json.loads(_read_home_file(directory / PARAMS))
        except FileNotFoundError as exc:
            raise ConfigError(f"no signing keys in {directory}", hint="run 'bastion init' first") from exc
        except ValueError as exc:
            raise IntegrityError("signing key parameters are damaged") from exc
        try:
            params = KdfParams.from_dict(doc["kdf"])
            salt = base64.b64decode(doc["salt"], validate=True)
        except (KeyError, TypeError, InvalidInput, binascii.Error) as exc:
            raise IntegrityError("signing key parameters are damaged") from exc
        secret = cls._secret_from(passphrase, salt=salt, kdf=params)
        manifest_key = _load_private(directory / MANIFEST_KEY, secret)
        tree_key = _load_private(directory / TREE_KEY, secret)
        if not isinstance(manifest_key, ec.EllipticCurvePrivateKey) or not isinstance(
            tree_key, ed25519.Ed25519PrivateKey
        ):
            raise IntegrityError("signing keys have the wrong type")
        keys = cls(directory, manifest_key=manifest_key, secret=secret, tree=Ed25519Signer(tree_key))
        keys._check_public_files()
        return keys

    def change_passphrase(self, new_passphrase: str, *, kdf: KdfParams | None = None) -> None:
        """Re-encrypt both private keys under a secret from ``new_passphrase`` (fresh salt)."""
        params = kdf or KdfParams.from_dict(json.loads(_read_home_file(self.directory / PARAMS))["kdf"])
        salt = os.urandom(SALT_SIZE)
        secret = self._secret_from(new_passphrase, salt=salt, kdf=params)
        _write_private(self.directory / MANIFEST_KEY, self._manifest_key, secret)
        _write_private(self.directory / TREE_KEY, self.tree._private, secret)
        doc = {"kdf": params.to_dict(), "salt": base64.b64encode(salt).decode("ascii")}
        atomic_write(self.directory / PARAMS, json.dumps(doc, sort_keys=True).encode("utf-8"), mode=0o600)
        self._secret = secret

    def _check_public_files(self) -> None:
        """The plain public-key files must match the private keys (someone may have swapped them)."""
        expected = {
            MANIFEST_PUB: self.manifest_public_key_pem(),
            TREE_PUB: self.tree.public_key_pem(),
        }
        for name, pem in expected.items():
            try:
                on_disk = _read_home_file(self.directory / name).decode("ascii")
            except (OSError, UnicodeDecodeError, IntegrityError) as exc:
                raise IntegrityError(f"public key {name} is missing or damaged") from exc
            if on_disk != pem:
                raise IntegrityError(f"public key {name} does not match its private key")

    # paths and public material
    @property
    def manifest_public_key_path(self) -> Path:
        return self.directory / MANIFEST_PUB

    @property
    def tree_public_key_path(self) -> Path:
        return self.directory / TREE_PUB

    def manifest_public_key_pem(self) -> str:
        return (
            self._manifest_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode("ascii")
        )

    # Ed25519 for tree heads and reports
    def sign(self, data: bytes) -> bytes:
        return self.tree.sign(data)

    def verify(self, data: bytes, signature: bytes) -> None:
        self.tree.verify(data, signature)

    def public_key_pem(self) -> str:
        return self.tree.public_key_pem()

    def row_sealer(self) -> RowSealer:
        """The sealer of authorization rows (:mod:`bastion.crypto.seal`), keyed from the tree-head key."""
        from bastion.crypto.seal import RowSealer

        raw = self.tree._private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        return RowSealer.derive(raw)

    # manifests
    def sign_directory(
        self, *, directory: str | os.PathLike[str], signature_path: str | os.PathLike[str]
    ) -> DirectoryManifest:
        """Sign every file of ``directory`` (model-signing format) into ``signature_path``.

        Refuses symlinks and git paths (files the upstream verifier would silently skip). Returns the digests
        (those model-signing computed and signed: each file is read once).
        """
        import model_signing.hashing

        root, sig = self._check_signable(directory, signature_path)
        hashing = _hashing_config(root, sig)
        try:
            computed = hashing.hash(root)
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot sign {root}: {_short(exc)}") from exc

        class _Computed(model_signing.hashing.Config):  # type: ignore[misc]
            """Hands the manifest just computed to the signer instead of hashing the files again."""

            def hash(self, model_path: Any, *, files_to_hash: Any = None) -> Any:
                return computed

        self._sign_manifest(root, sig, _Computed())
        files = {rd.identifier: rd.digest.digest_hex for rd in computed.resource_descriptors()}
        return _directory_manifest_of(files)

    def unsafe_sign_digests(
        self,
        *,
        directory: str | os.PathLike[str],
        digests: dict[str, str],
        signature_path: str | os.PathLike[str],
        files_on_disk: bool = True,
    ) -> DirectoryManifest:
        """Sign ``directory`` from SHA-256 digests its caller already computed, without reading the files.

        Sharp (hence ``unsafe_``): the signature vouches for bytes this method never saw. Only a caller that
        hashed exactly the bytes it stores may use it (the registry's push does, in one pass); anyone else
        signs with :meth:`sign_directory`.

        ``files_on_disk=False``: the files are not in ``directory`` (an empty directory that only names the
        model); the caller read them elsewhere, once, and checked their names (the registry's push).

        The signature is the one :meth:`sign_directory` makes (same model-signing manifest, serialisation
        parameters and signer, so it verifies upstream as well); only the hashing is skipped. The caller
        vouches for the digests: it must have hashed exactly the bytes it stores. ``digests`` must name every
        regular file of the directory (relative POSIX paths, as model-signing enumerates them), no more and
        no less; symlinks and git paths are refused as in :meth:`sign_directory`.
        """
        import model_signing.manifest

        # model-signing has no public constructor for a digest; its private ``_hashing`` is used here only,
        # with model-signing pinned to the exact version this was tested against (pyproject.toml, and
        # tests/crypto/test_signing_pin.py fails loudly when the installed version moves).
        from model_signing._hashing.hashing import Digest

        root, sig = self._check_signable(directory, signature_path)
        hashing = _hashing_config(root, sig)
        on_disk = _signable_files(root, sig) if files_on_disk else set(digests)
        if set(digests) != on_disk:
            missing = sorted(on_disk - set(digests))[:3]
            extra = sorted(set(digests) - on_disk)[:3]
            raise InvalidInput(f"digests do not match the files of {root}: missing {missing}, extra {extra}")
        try:
            values = {path: bytes.fromhex(d) for path, d in digests.items()}
        except ValueError as exc:
            raise InvalidInput("digests must be hex SHA-256 values") from exc
        if any(len(v) != hashlib.sha256().digest_size for v in values.values()):
            raise InvalidInput("digests must be hex SHA-256 values")
        try:
            # hashing no file at all yields model-signing's own serialisation description (ignored paths …)
            empty = hashing.hash(root, files_to_hash=[])
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot sign {root}: {_short(exc)}") from exc
        stype = model_signing.manifest.SerializationType.from_args(empty.serialization_type)
        manifest = model_signing.manifest.Manifest(
            empty.model_name,
            [stype.new_item(path, Digest("sha256", value)) for path, value in sorted(values.items())],
            stype,
        )

        class _Given(model_signing.hashing.Config):  # type: ignore[misc]
            def hash(self, model_path: Any, *, files_to_hash: Any = None) -> Any:
                return manifest

        self._sign_manifest(root, sig, _Given())
        return _directory_manifest_of({path: values[path].hex() for path in sorted(values)})

    sign_digests = unsafe_sign_digests  # deprecated name, kept while the registry and tests move over

    def _check_signable(
        self, directory: str | os.PathLike[str], signature_path: str | os.PathLike[str]
    ) -> tuple[Path, Path]:
        root = _check_directory(Path(directory))
        sig = Path(signature_path)
        present = [name for name in _GIT_PATHS if (root / name).exists()]
        if present:
            raise InvalidInput(f"refusing to sign {root}: it holds git paths ({', '.join(present)})")
        if sig.exists():
            raise Conflict(f"signature file already exists: {sig}")
        return root, sig

    def _sign_manifest(self, root: Path, sig: Path, hashing: Any) -> None:
        import model_signing.signing

        try:
            (
                model_signing.signing.Config()
                .use_elliptic_key_signer(private_key=self.directory / MANIFEST_KEY, password=self._secret)  # type: ignore[arg-type]
                .set_hashing_config(hashing)
                .sign(root, sig)
            )
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot sign {root}: {_short(exc)}") from exc

    def verify_directory(
        self, *, directory: str | os.PathLike[str], signature_path: str | os.PathLike[str]
    ) -> None:
        """:func:`verify_directory` with this home's manifest public key."""
        verify_directory(
            directory=directory, signature_path=signature_path, public_key_path=self.manifest_public_key_path
        )


__all__ = [
    "DirectoryManifest",
    "Ed25519Signer",
    "Ed25519Verifier",
    "SigningKeys",
    "directory_manifest",
    "verify_directory",
]
