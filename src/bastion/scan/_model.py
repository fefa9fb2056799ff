"""Result and configuration objects of the scanner (frozen dataclasses, JSON-serialisable)."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from bastion.errors import ConfigError

_ALLOW_ENTRY = re.compile(r"[A-Za-z_][\w.]*[:.][A-Za-z_][\w.]*")


def printable(text: str) -> str:
    """Escape control characters (archive member names are attacker-chosen: no log or terminal injection)."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


class Severity(enum.StrEnum):
    critical = "critical"  # known code execution / exfiltration primitive
    high = "high"  # not on the allow-list, unresolvable, or an archive trick a loader would follow
    medium = "medium"  # suspicious structure (CRC mismatch, custom objects)


class Verdict(enum.StrEnum):
    safe = "safe"
    unsafe = "unsafe"
    error = "error"  # could not be analysed: counts as unsafe


@dataclass(frozen=True)
class Issue:
    """One finding. ``member`` is the path inside containers ("" for the file itself), joined with ``!``."""

    rule: str
    severity: Severity
    message: str
    member: str = ""
    callable: str | None = None
    offset: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity.value,
            "message": self.message,
            "member": self.member,
            "callable": self.callable,
            "offset": self.offset,
        }


@dataclass(frozen=True)
class ScanError:
    """Why (part of) a file could not be analysed."""

    message: str
    member: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "member": self.member}


@dataclass(frozen=True)
class FileReport:
    path: str
    format: str
    size: int
    issues: tuple[Issue, ...] = ()
    errors: tuple[ScanError, ...] = ()
    members: tuple[str, ...] = ()  # "member: format" for every analysed view inside the file
    external_data: tuple[str, ...] = ()  # files an ONNX model reads its tensors from (next to it)
    #: the byte ranges read from those files: (file, offset, length or -1 to the end); not serialised
    external_spans: tuple[tuple[str, int, int], ...] = field(default=(), repr=False, compare=False)

    @property
    def verdict(self) -> Verdict:
        if self.issues:
            return Verdict.unsafe
        if self.errors:
            return Verdict.error
        return Verdict.safe

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "size": self.size,
            "verdict": self.verdict.value,
            "safe": self.verdict is Verdict.safe,  # an error (could not scan) counts as unsafe
            "issues": [i.to_dict() for i in self.issues],
            "errors": [e.to_dict() for e in self.errors],
            "members": list(self.members),
            "external_data": list(self.external_data),
        }


@dataclass(frozen=True)
class ScanReport:
    files: tuple[FileReport, ...]

    @property
    def verdict(self) -> Verdict:
        verdicts = {f.verdict for f in self.files}
        if Verdict.unsafe in verdicts:
            return Verdict.unsafe
        if Verdict.error in verdicts:
            return Verdict.error
        return Verdict.safe

    @property
    def exit_code(self) -> int:
        """0 nothing unsafe, 1 findings, 2 could not scan (and nothing definitely unsafe)."""
        return {Verdict.safe: 0, Verdict.unsafe: 1, Verdict.error: 2}[self.verdict]

    @property
    def issues(self) -> tuple[Issue, ...]:
        return tuple(i for f in self.files for i in f.issues)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "safe": self.verdict is Verdict.safe,
            "exit_code": self.exit_code,
            "files": [f.to_dict() for f in self.files],
        }


@dataclass(frozen=True)
class ScanConfig:
    """Bounds of the analysis. Every limit fails closed: exceeding it is an error or a finding."""

    max_pickle_bytes: int = 8 << 30  # a single pickle stream (opcodes + inline data)
    max_archive_ratio: float = 200.0  # decompressed / compressed, per member or stream
    max_archive_bytes: int = 16 << 30  # total decompressed bytes per file
    max_archive_members: int = 100_000
    max_depth: int = 8  # nested containers (zip in tar in gzip …)
    max_pickle_ops: int = 200_000_000
    max_stack: int = 1_000_000
    max_nesting: int = 1_000  # MARK nesting and container nesting inside a pickle
    max_memo: int = 10_000_000
    max_header_bytes: int = 100 << 20  # safetensors / npy / keras JSON headers
    max_gguf_items: int = 1_000_000
    max_gguf_string: int = 1 << 20
    extra_allow: tuple[str, ...] = field(default_factory=tuple)
    #: judge TorchScript archives (code that ``torch.jit.load`` compiles and runs) by their pickles only;
    #: without it a TorchScript archive is unsafe (issue 19, finding F3)
    unsafe_allow_torchscript: bool = False

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> ScanConfig:
        """Build from the ``[scan]`` table of bastion.toml (unknown keys raise)."""
        known = {
            "max_pickle_bytes",
            "max_archive_ratio",
            "max_archive_bytes",
            "extra_allow",
            "unsafe_allow_torchscript",
        }
        unknown = sorted(set(section) - known)
        if unknown:
            raise ConfigError(f"unknown key(s) in [scan]: {', '.join(unknown)}")
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in section:
                continue
            value = section[f.name]
            if f.name == "extra_allow":
                names_ok = isinstance(value, list | tuple) and all(
                    isinstance(v, str) and _ALLOW_ENTRY.fullmatch(v) for v in value
                )
                if not names_ok:
                    raise ConfigError("[scan] extra_allow must be a list of 'module:qualname' strings")
                kwargs[f.name] = tuple(value)
            elif f.name == "unsafe_allow_torchscript":
                if not isinstance(value, bool):
                    raise ConfigError("[scan] unsafe_allow_torchscript must be true or false")
                kwargs[f.name] = value
            elif isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"[scan] {f.name} must be a positive number")
            else:
                kwargs[f.name] = value
        return cls(**kwargs)


__all__ = ["FileReport", "Issue", "ScanConfig", "ScanError", "ScanReport", "Severity", "Verdict", "printable"]
