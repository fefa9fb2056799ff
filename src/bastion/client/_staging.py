"""Where streamed files land on the client: one private staging directory, moved into place only when whole.

Pull (:meth:`RemoteVault.pull`), the gateway's attested pull and ``data protect`` all receive a tar stream
into a fresh 0700 directory, check what arrived, and only then move it to where the caller asked; whatever
fails, the staging directory goes, and a pull's output directory goes too when the pull created it.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from bastion.errors import IntegrityError, InvalidInput
from bastion.files import prepare_out_dir
from bastion.vault import SIGNATURE_FILE, ArtifactVersion, public_key_path

PULL_META = ("version.json", "pub.pem")


@contextmanager
def staging(stage: Path, *, cannot_write: str, malformed: str) -> Iterator[Path]:
    """Create ``stage`` (0700) and yield it; remove it at the end, whatever happens.

    An OSError inside is InvalidInput ("``cannot_write`` (reason)"); a ValueError or KeyError (a stream
    that does not parse) is IntegrityError(``malformed``).
    """
    try:
        os.mkdir(stage, 0o700)
        yield stage
    except OSError as exc:
        raise InvalidInput(f"{cannot_write} ({exc.strerror})") from exc
    except (ValueError, KeyError) as exc:
        raise IntegrityError(malformed) from exc
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@contextmanager
def pull_staging(out: str | os.PathLike[str]) -> Iterator[tuple[Path, Path]]:
    """``(target, stage)`` for a pull into ``out`` (new or empty; removed on failure if created here)."""
    target = Path(out).absolute()
    created = prepare_out_dir(target)
    try:
        with staging(
            target / f".bastion-pull-{secrets.token_hex(8)}",
            cannot_write=f"cannot write the pulled files into {target}",
            malformed="the server sent a malformed pull stream",
        ) as stage:
            yield target, stage
    except BaseException:
        if created:
            shutil.rmtree(target, ignore_errors=True)
        raise


def install_pulled(
    version: ArtifactVersion,
    files: Mapping[str, tuple[int, str]],
    pub_pem: bytes,
    *,
    stage: Path,
    target: Path,
) -> None:
    """Check what arrived against the signed version, move it from ``stage`` into ``target``, write
    ``OUT.pub.pem`` beside it (created exclusively, then renamed into place)."""
    check_pulled(version, files)
    for entry in sorted(os.listdir(stage)):
        os.rename(stage / entry, target / entry)
    tmp = target.parent / f".{target.name}.pub-{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pub_pem)
    os.replace(tmp, public_key_path(target))


def check_pulled(version: ArtifactVersion, files: Mapping[str, tuple[int, str]]) -> None:
    """Every file of the version arrived with its signed size and SHA-256; nothing else but model.sig."""
    expected = {f.path: (f.size, f.sha256) for f in version.files}
    extra = set(files) - set(expected) - {SIGNATURE_FILE}
    if extra or SIGNATURE_FILE not in files:
        raise IntegrityError(f"{version.ref}: the server sent files the version does not list")
    for path, want in expected.items():
        if files.get(path) != want:
            raise IntegrityError(f"{version.ref}: {path} arrived with a different size or digest")
