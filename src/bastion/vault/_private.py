"""Private working space of a project home, and the clean-up of what a killed process left behind.

Every temporary the vault makes (push work directories, scan copies, ``materialize`` directories, the staging
directory of a pull) is registered by a *claim*: a file ``home/tmp/claims/<id>.json`` naming the path, held
under an exclusive ``flock`` for as long as the temporary lives. A process killed by SIGKILL loses its lock,
so the next command that opens the project (:func:`clean_stale`) finds claims it can lock, removes what they
name and says so (a warning on stderr and the returned list). A live process's temporaries are never touched.

A pull stages its plaintext in ``OUT/.bastion-pull-<id>/`` (inside the directory the user named, mode 0700),
so even a killed pull never leaves plaintext anywhere else; its claim lets the next run remove the staging
directory.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import secrets
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from bastion.files import prepare_out_dir  # re-exported: the vault's local pull uses it

logger = logging.getLogger(__name__)

CLAIMS = "claims"
_MAX_CLAIM = 64 << 10
# directories older releases made under home/tmp without a claim (this one never uses these prefixes)
_LEGACY_PREFIXES = ("stage-", "push-", "materialize-")


def _mkdir_private(path: Path) -> None:
    """Create ``path`` (mode 0700) or check an existing one is a real directory, and force 0700."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(path)) from None
    os.chmod(path, 0o700, follow_symlinks=False)


def tmp_root(home: Path) -> Path:
    """``home/tmp`` (0700), with its ``claims`` directory."""
    root = home / "tmp"
    _mkdir_private(root)
    _mkdir_private(root / CLAIMS)
    return root


@contextlib.contextmanager
def claim(home: Path, path: Path, *, kind: str) -> Iterator[None]:
    """Register ``path`` (a temporary this process owns) for removal if the process dies before releasing it.

    On a normal exit the claim file is removed; removing ``path`` itself stays the caller's job.
    """
    claims = tmp_root(home) / CLAIMS
    token = secrets.token_hex(8)
    name = claims / f"{token}.json"
    # written and locked under a temporary name, then renamed: a claim is never seen empty or unlocked
    partial = claims / f".tmp-{token}"
    fd = os.open(partial, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, json.dumps({"path": str(path), "kind": kind, "pid": os.getpid()}).encode())
        os.fsync(fd)
        os.rename(partial, name)
        yield
    finally:
        for leftover in (name, partial):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        os.close(fd)


@contextlib.contextmanager
def private_workdir(home: Path, prefix: str = "w-") -> Iterator[Path]:
    """A claimed private directory (0700) under ``home/tmp``, removed on exit (or by the next run if killed).

    The claim is taken before the directory exists, so a concurrent :func:`clean_stale` never sees it
    unclaimed.
    """
    path = tmp_root(home) / f"{prefix}{secrets.token_hex(8)}"
    with claim(home, path, kind="workdir"):
        os.mkdir(path, 0o700)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)


def write_private(path: Path, data: bytes) -> None:
    """Create ``path`` (never following or replacing anything: ``O_EXCL|O_NOFOLLOW``) with mode 0600."""
    fd = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600
    )
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    return True


def clean_stale(home: Path) -> list[str]:
    """Remove every temporary whose owner died (its claim is not locked); returns what was removed.

    Also removes unclaimed leftovers of older versions under ``home/tmp`` (``stage-*``, ``push-*``,
    ``materialize-*`` directories made before claims existed).
    """
    root = home / "tmp"
    if not root.is_dir():
        return []
    removed: list[str] = []
    claims = root / CLAIMS
    live: set[str] = set()
    if claims.is_dir():
        for entry in sorted(claims.iterdir()):
            if entry.name.startswith(".tmp-"):
                with contextlib.suppress(OSError):
                    if time.time() - entry.lstat().st_mtime > 3600:  # a claim its writer never finished
                        entry.unlink()
                continue
            try:
                fd = os.open(entry, os.O_RDWR | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    with contextlib.suppress(OSError, ValueError):
                        live.add(str(json.loads(os.pread(fd, _MAX_CLAIM, 0))["path"]))
                    continue
                try:
                    doc = json.loads(os.pread(fd, _MAX_CLAIM, 0) or b"{}")
                    target = Path(str(doc["path"]))
                except (OSError, ValueError, KeyError, TypeError):
                    target = None
                if target is not None and _allowed_target(home, target) and _remove(target):
                    removed.append(str(target))
                entry.unlink(missing_ok=True)
            finally:
                os.close(fd)
    for old in sorted(root.iterdir()):
        if old.name == CLAIMS or str(old) in live:
            continue
        if old.name.startswith(_LEGACY_PREFIXES) and _unclaimed_old(old):
            _remove(old)
            removed.append(str(old))
    for path in removed:
        logger.warning("removed a leftover temporary of an interrupted bastion command: %s", path)
    return removed


def _unclaimed_old(path: Path) -> bool:
    """A pre-claims temporary: only the directory layouts older releases made (no claim can name them)."""
    return path.is_dir() and not path.is_symlink()


def _allowed_target(home: Path, target: Path) -> bool:
    """A claim may name a temporary under ``home/tmp`` or a pull staging directory (``.bastion-pull-*``)."""
    if target.name.startswith(".bastion-pull-"):
        return True
    try:
        target.relative_to(home / "tmp")
    except ValueError:
        return False
    return target.parent == home / "tmp"


__all__ = ["claim", "clean_stale", "prepare_out_dir", "private_workdir", "tmp_root", "write_private"]
