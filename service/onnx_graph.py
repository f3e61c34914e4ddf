"""Just enough of an ONNX file, read straight from its protobuf bytes: the graph's nodes and float initializers.

The service needs a model's dense weights (for Grad-CAM, service/explain.py) but not the `onnx` package (31 MB,
a training dependency): the protobuf wire format is a few lines to walk. Field numbers from onnx/onnx.proto.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

# onnx.proto field numbers
MODEL_GRAPH = 7
GRAPH_NODE, GRAPH_INITIALIZER = 1, 5
NODE_INPUT, NODE_OUTPUT, NODE_OP_TYPE, NODE_ATTRIBUTE = 1, 2, 4, 5
ATTRIBUTE_NAME, ATTRIBUTE_F, ATTRIBUTE_I, ATTRIBUTE_INTS = 1, 2, 3, 8
TENSOR_DIMS, TENSOR_DATA_TYPE, TENSOR_FLOAT_DATA, TENSOR_NAME, TENSOR_RAW_DATA = 1, 2, 4, 8, 9
FLOAT = 1  # TensorProto.DataType.FLOAT

Value = int | bytes  # a varint or fixed-width number, or a length-delimited payload


class GraphFormatError(ValueError):
    """The bytes are not the protobuf this reader expects."""


@dataclass(frozen=True, slots=True)
class Node:
    """One graph node: its operator, input and output names, and its int, float and ints attributes."""

    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: dict[str, int | float | tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Graph:
    nodes: tuple[Node, ...]
    initializers: dict[str, np.ndarray]  # float32 tensors only, by name

    def producer(self, output: str) -> Node | None:
        """The node that computes the named value, if any."""
        return next((node for node in self.nodes if output in node.outputs), None)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise GraphFormatError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int, Value]]:
    """(field number, wire type, value) for each field of one message, in order."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: Value
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise GraphFormatError(f"unsupported wire type {wire}")
        if pos > len(data):
            raise GraphFormatError("truncated message")
        yield number, wire, value


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _ints(wire: int, value: Value) -> list[int]:
    if wire == 0:
        assert isinstance(value, int)
        return [_signed(value)]
    assert isinstance(value, bytes)
    out, pos = [], 0
    while pos < len(value):  # packed
        number, pos = _varint(value, pos)
        out.append(_signed(number))
    return out


def _attribute(data: bytes) -> tuple[str, int | float | tuple[int, ...]] | None:
    name, found = "", None
    ints: list[int] = []
    for number, wire, value in _fields(data):
        if number == ATTRIBUTE_NAME and isinstance(value, bytes):
            name = value.decode()
        elif number == ATTRIBUTE_I and isinstance(value, int):
            found = _signed(value)
        elif number == ATTRIBUTE_F and isinstance(value, bytes):
            found = struct.unpack("<f", value)[0]
        elif number == ATTRIBUTE_INTS:
            ints += _ints(wire, value)
    if ints:
        return name, tuple(ints)
    return (name, found) if found is not None else None


def _node(data: bytes) -> Node:
    op_type, inputs, outputs, attributes = "", [], [], {}
    for number, _, value in _fields(data):
        if not isinstance(value, bytes):
            continue
        if number == NODE_INPUT:
            inputs.append(value.decode())
        elif number == NODE_OUTPUT:
            outputs.append(value.decode())
        elif number == NODE_OP_TYPE:
            op_type = value.decode()
        elif number == NODE_ATTRIBUTE and (attribute := _attribute(value)) is not None:
            attributes[attribute[0]] = attribute[1]
    return Node(op_type, tuple(inputs), tuple(outputs), attributes)


def _tensor(data: bytes) -> tuple[str, np.ndarray] | None:
    name, dims, dtype, raw, floats = "", [], None, None, bytearray()
    for number, wire, value in _fields(data):
        if number == TENSOR_DIMS:
            dims += _ints(wire, value)
        elif number == TENSOR_DATA_TYPE and isinstance(value, int):
            dtype = value
        elif number == TENSOR_NAME and isinstance(value, bytes):
            name = value.decode()
        elif number == TENSOR_RAW_DATA and isinstance(value, bytes):
            raw = value
        elif number == TENSOR_FLOAT_DATA and isinstance(value, bytes):
            floats += value  # packed little-endian floats (or one unpacked float)
    if dtype != FLOAT:
        return None
    array = np.frombuffer(raw if raw is not None else bytes(floats), "<f4")
    if array.size != int(np.prod(dims, dtype=np.int64)):
        raise GraphFormatError(f"initializer {name!r} holds {array.size} floats, its dims say {dims}")
    return name, array.reshape(dims)


def read_graph(model: bytes) -> Graph:
    """The nodes and float32 initializers of a serialized ONNX ModelProto; GraphFormatError if malformed."""
    graphs = [value for number, _, value in _fields(model) if number == MODEL_GRAPH and isinstance(value, bytes)]
    if len(graphs) != 1:
        raise GraphFormatError("no graph in the model")
    nodes, initializers = [], {}
    for number, _, value in _fields(graphs[0]):
        if not isinstance(value, bytes):
            continue
        if number == GRAPH_NODE:
            nodes.append(_node(value))
        elif number == GRAPH_INITIALIZER and (tensor := _tensor(value)) is not None:
            initializers[tensor[0]] = tensor[1]
    return Graph(tuple(nodes), initializers)
