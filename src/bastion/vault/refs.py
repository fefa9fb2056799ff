"""References to artifact versions and the frozen records the vault returns."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NewType

from bastion.config import ENVIRONMENTS
from bastion.errors import InvalidInput

ArtifactName = NewType("ArtifactName", str)
KINDS: tuple[str, ...] = ("model", "dataset")
# ASCII only, the whole string (``re.fullmatch``: ``$`` would accept a trailing newline).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}", re.ASCII)
_VERSION = re.compile(r"[1-9][0-9]{0,8}", re.ASCII)
MAX_METADATA_DEPTH = 32
MAX_METADATA_BYTES = 1 << 20


def check_name(name: str) -> ArtifactName:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(
            f"invalid artifact name {name!r}: letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    return ArtifactName(name)


MAX_TAGS = 64
MAX_TAG_KEY = 64
MAX_TAG_VALUE = 256


def check_tags(tags: Mapping[str, str]) -> None:
    """Version tags: at most 64, keys 1..64 and values 0..256 characters, no control, format or line/paragraph
    separator characters (they would forge lines and columns in listings and logs)."""
    import unicodedata

    if len(tags) > MAX_TAGS:
        raise InvalidInput(f"at most {MAX_TAGS} tags")
    for key, value in tags.items():
        if not 1 <= len(key) <= MAX_TAG_KEY or len(value) > MAX_TAG_VALUE:
            raise InvalidInput(f"tag keys are 1..{MAX_TAG_KEY} characters and values at most {MAX_TAG_VALUE}")
        for text in (key, value):
            if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs") for ch in text):
                raise InvalidInput("tags may not contain control characters (newline, tab, ...)")


def check_metadata(meta: Mapping[str, Any]) -> None:
    """Version metadata: a JSON object, nested at most :data:`MAX_METADATA_DEPTH` deep, at most 1 MiB."""
    stack: list[tuple[Any, int]] = [(meta, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_METADATA_DEPTH:
            raise InvalidInput(f"metadata is nested deeper than {MAX_METADATA_DEPTH} levels")
        if isinstance(value, Mapping):
            if not all(isinstance(k, str) for k in value):
                raise InvalidInput("metadata keys must be strings")
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list | tuple):
            stack.extend((v, depth + 1) for v in value)
        elif not (value is None or isinstance(value, str | int | float | bool)):
            raise InvalidInput("metadata must be JSON-serialisable")
    try:
        size = len(json.dumps(meta, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidInput("metadata must be JSON-serialisable (no NaN or infinity)") from exc
    if size > MAX_METADATA_BYTES:
        raise InvalidInput("metadata is larger than 1 MiB")


@dataclass(frozen=True)
class ArtifactRef:
    """``NAME`` (latest version), ``NAME:VERSION`` or ``NAME@ENV`` (latest version currently in ENV)."""

    name: ArtifactName
    version: int | None = None
    env: str | None = None

    @classmethod
    def parse(cls, text: str | ArtifactRef) -> ArtifactRef:
        if isinstance(text, ArtifactRef):
            return text
        if not isinstance(text, str):
            raise InvalidInput("an artifact reference must be a string such as NAME, NAME:3 or NAME@prod")
        if ":" in text:
            name, _, ver = text.partition(":")
            if not _VERSION.fullmatch(ver):
                raise InvalidInput(f"bad version in {text!r}: versions are positive integers (ASCII digits)")
            return cls(name=check_name(name), version=int(ver))
        if "@" in text:
            name, _, env = text.partition("@")
            if env not in ENVIRONMENTS:
                raise InvalidInput(f"bad environment in {text!r} (one of {', '.join(ENVIRONMENTS)})")
            return cls(name=check_name(name), env=env)
        return cls(name=check_name(text))

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.env is not None:
            return f"{self.name}@{self.env}"
        return str(self.name)


@dataclass(frozen=True)
class FileEntry:
    path: str
    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}


@dataclass(frozen=True)
class Annotation:
    namespace: str
    data: Mapping[str, Any]
    created_at: str
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "data": dict(self.data),
            "created_at": self.created_at,
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class ArtifactVersion:
    """One immutable version of a model or data set, as recorded (and signed) in the registry."""

    name: ArtifactName
    version: int
    kind: str
    env: str
    manifest_digest: str
    size: int
    files: tuple[FileEntry, ...]
    created_at: str
    created_by: str
    classification: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    annotations: tuple[Annotation, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "env": self.env,
            "manifest_digest": self.manifest_digest,
            "size": self.size,
            "files": [f.to_dict() for f in self.files],
            "created_at": self.created_at,
            "created_by": self.created_by,
            "classification": self.classification,
            "tags": dict(self.tags),
            "metadata": dict(self.metadata),
            "annotations": [a.to_dict() for a in self.annotations],
        }


@dataclass(frozen=True)
class KeyRotation:
    """A rotation: the new KEK version, the registry data keys rewrapped and, per other holder, its count."""

    env: str
    kek_version: int
    rewrapped: int
    other: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "kek_version": self.kek_version,
            "rewrapped": self.rewrapped,
            "other": dict(self.other),
        }


@dataclass(frozen=True)
class BlobCollection:
    """What ``registry gc`` found (``dry_run``) or deleted: blobs no version refers to, and temporaries left
    by killed pushes, all older than the grace period; ``recent`` younger ones were left alone."""

    dry_run: bool
    orphans: tuple[str, ...]
    temporaries: int
    bytes: int
    recent: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "orphans": list(self.orphans),
            "temporaries": self.temporaries,
            "bytes": self.bytes,
            "recent": self.recent,
        }


__all__ = [
    "KINDS",
    "Annotation",
    "ArtifactName",
    "ArtifactRef",
    "ArtifactVersion",
    "BlobCollection",
    "FileEntry",
    "KeyRotation",
    "check_metadata",
    "check_name",
    "check_tags",
]
