"""ONNX: parse the protobuf (bounded), find every tensor with external data, refuse paths that escape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bastion.scan._formats.common import escapes
from bastion.scan._io import Malformed, Source
from bastion.scan._model import ScanConfig, Severity
from bastion.scan.interface import AddIssue, Walk


def check_onnx(
    src: Source, config: ScanConfig, add: AddIssue, *, model_dir: Path | None
) -> list[tuple[str, int, int]]:
    """Judge an ONNX model; returns the external data its tensors read: ``(location, offset, length)``.

    ``location`` is relative to the model; ``length`` -1 when the tensor reads to the end of the file.
    """
    try:
        import onnx
    except ImportError as exc:
        raise Malformed("the onnx package is needed to analyse ONNX files (extra 'scan')") from exc
    if src.size > 2 << 30:
        raise Malformed("ONNX protobuf larger than 2 GiB")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(src.read_at(0, src.size))
    except Exception as exc:
        raise Malformed("not a parseable ONNX model") from exc
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise Malformed("not an ONNX model (no ir_version or graph)")
    graphs: list[Any] = [model.graph, *model.functions]  # functions hold nodes (and their attributes) too
    tensors: list[Any] = []
    count = 0
    while graphs:
        g = graphs.pop()
        count += 1
        if count > 100_000:
            raise Malformed("ONNX graph nesting out of bounds")
        for sparse in [*getattr(g, "sparse_initializer", ())]:
            tensors.extend((sparse.values, sparse.indices))
        tensors.extend(getattr(g, "initializer", ()))
        for node in g.node:
            for attr in node.attribute:
                if attr.HasField("g"):
                    graphs.append(attr.g)
                graphs.extend(attr.graphs)
                if attr.HasField("t"):
                    tensors.append(attr.t)
                tensors.extend(attr.tensors)
                if attr.HasField("sparse_tensor"):
                    tensors.extend((attr.sparse_tensor.values, attr.sparse_tensor.indices))
                for sp in attr.sparse_tensors:
                    tensors.extend((sp.values, sp.indices))
    locations: list[tuple[str, int, int]] = []
    for t in tensors:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in t.external_data if e.key == "location"), None)
        if location is None:
            add(
                "onnx-external-data",
                Severity.high,
                f"tensor {t.name[:60]!r} has external data without location",
            )
            continue
        if escapes(location, model_dir):
            add(
                "onnx-external-data",
                Severity.high,
                f"tensor {t.name[:60]!r} reads external data from {location[:120]!r} outside the model dir",
                location[:200],
            )
            continue
        locations.append((location, *_span(t)))
    return locations


def _span(t: Any) -> tuple[int, int]:
    """The byte range onnx's ``load_external_data_for_tensor`` reads (-1 length: to the end; -2: invalid)."""
    info = {e.key: e.value for e in t.external_data}
    try:
        offset = int(info.get("offset", "0"))
        length = int(info["length"]) if "length" in info else -1
    except ValueError:
        return 0, -2
    return (offset, length) if offset >= 0 and length >= -1 else (0, -2)


class OnnxHandler:
    name = "onnx"

    def matches(self, head: bytes, src: Source) -> bool:
        return head[:1] == b"\x08"  # field 1 (ir_version), varint: how every ModelProto onnx writes starts

    def scan(self, walk: Walk, src: Source, member: str, depth: int) -> str:
        model_dir = walk.path.parent if not member else None
        for location, offset, length in check_onnx(src, walk.config, walk.adder(member), model_dir=model_dir):
            if not member:  # a file next to the model (inside an archive, nothing reads it)
                walk.external_data.append(location)
                walk.external_spans.append((location, offset, length))
        return "onnx"


ONNX = OnnxHandler()

__all__ = ["ONNX", "OnnxHandler", "check_onnx"]
