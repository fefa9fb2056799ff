"""Pickle streams: plain pickles, joblib files (both readings), legacy torch files, trailing pickles.

A stream that starts like a pickle and fails to parse is text only when CPython's C and pure-Python
unpicklers also reject it before reaching anything (issue 19, class 4); a joblib file is judged as
``joblib.load`` reads it (array data skipped by numpy's rules) and as ``pickle.load`` reads it (replayed with
CPython's unpickler).
"""

from __future__ import annotations

from bastion.scan._formats.text import is_text, scan_text
from bastion.scan._formats.torch_legacy import LEGACY_TORCH_MAGIC, scan_legacy_sequence
from bastion.scan._io import BoundExceeded, Malformed, Reader, Source
from bastion.scan._pickle import JOBLIB_WRAPPER, PickleAnalyzer, analyze_pickle, looks_like_pickle
from bastion.scan.interface import Walk


class PickleHandler:
    name = "pickle"

    def matches(self, head: bytes, src: Source) -> bool:
        return looks_like_pickle(head)

    def scan(self, walk: Walk, src: Source, member: str, depth: int) -> str:
        text_ok = src.read_at(0, 1) != b"\x80"  # a PROTO opcode: never text
        r = src.reader()
        before = len(walk.issues)
        analyzer = PickleAnalyzer(
            r, config=walk.config, issues=walk.issues, member=member, torchscript=walk.torchscript
        )
        try:
            res = analyzer.run()
        except BoundExceeded:
            raise
        except Malformed:
            if analyzer.wrappers or JOBLIB_WRAPPER in analyzer.globals:  # joblib's array data
                if analyzer.wrappers:  # past the first wrapper, CPython's own reading is judged (replay)
                    del walk.issues[analyzer.issues_at_wrapper :]
                return scan_joblib(walk, src, member)
            # text that merely starts like a pickle, if CPython's unpickler (C and pure Python) agrees
            if text_ok and len(walk.issues) == before and is_text(src) and walk.replay(src, member, "text"):
                return scan_text(walk, src, member)
            raise
        if isinstance(res.value, int) and res.value == LEGACY_TORCH_MAGIC:
            return scan_legacy_sequence(walk, r, member)
        if analyzer.wrappers or JOBLIB_WRAPPER in analyzer.globals:
            if analyzer.wrappers:
                del walk.issues[analyzer.issues_at_wrapper :]
            return scan_joblib(walk, src, member)
        scan_trailing(walk, r, member)
        return "pickle"


def scan_joblib(walk: Walk, src: Source, member: str) -> str:
    """A pickle holding joblib array wrappers: judge both readings (``pickle.load``, ``joblib.load``)."""
    r = src.reader()
    try:
        analyze_pickle(
            r,
            config=walk.config,
            issues=walk.issues,
            member=member,
            torchscript=walk.torchscript,
            joblib=True,
        )
        scan_trailing(walk, r, member)
    finally:  # after the analysis, so its findings (with offsets) come first
        walk.replay(src, member, "pickle.load reading of a joblib file")
    return "joblib"


def scan_trailing(walk: Walk, r: Reader, member: str) -> None:
    """Further pickles after the first (``pickle.load`` called again on the same file reads them)."""
    while r.remaining() > 0:
        if not looks_like_pickle(r.peek(2)):
            walk.note(member, f"{r.remaining()} trailing bytes after the pickle")
            break
        try:
            analyze_pickle(
                r, config=walk.config, issues=walk.issues, member=member, torchscript=walk.torchscript
            )
        except Malformed:
            walk.note(member, "trailing bytes after the pickle are not a pickle")
            break


PICKLE = PickleHandler()

__all__ = ["PICKLE", "PickleHandler", "scan_joblib", "scan_trailing"]
