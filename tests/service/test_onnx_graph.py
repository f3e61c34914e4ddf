"""The ONNX reader the service uses instead of the onnx package: the same nodes and weights as onnx reads."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from service.onnx_graph import GraphFormatError, read_graph
from tests.paths import COMMITTED_MODELS, committed_repository


@pytest.mark.parametrize("name", sorted(COMMITTED_MODELS))
def test_read_graph_matches_the_onnx_package(name: str) -> None:
    committed_repository()
    data = (COMMITTED_MODELS[name] / "model.onnx").read_bytes()
    expected = onnx.load_from_string(data).graph
    graph = read_graph(data)
    assert [(n.op_type, n.inputs, n.outputs) for n in graph.nodes] == [
        (n.op_type, tuple(n.input), tuple(n.output)) for n in expected.node
    ]
    weights = {tensor.name: numpy_helper.to_array(tensor) for tensor in expected.initializer}
    assert graph.initializers.keys() == weights.keys()
    for name, array in weights.items():
        np.testing.assert_array_equal(graph.initializers[name], array)


def test_read_graph_reads_int_float_and_ints_attributes_and_float_data() -> None:
    weight = helper.make_tensor("w", onnx.TensorProto.FLOAT, [2, 3], [1.0, -2.0, 3.5, 0.0, 5.0, -6.25])
    node = helper.make_node("Gemm", ["x", "w"], ["y"], alpha=0.5, transB=-1, perm=[3, -2, 1])
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2])
    model = helper.make_model(helper.make_graph([node], "g", [x], [y], initializer=[weight]))
    graph = read_graph(model.SerializeToString())
    assert graph.nodes[0].attributes == {"alpha": 0.5, "transB": -1, "perm": (3, -2, 1)}
    np.testing.assert_array_equal(graph.initializers["w"], [[1.0, -2.0, 3.5], [0.0, 5.0, -6.25]])


@pytest.mark.parametrize("data", [b"\x3a\xff", b"\x3a\x05\x0a\x03", b"\x0f\x00", b"junk"])
def test_read_graph_refuses_bytes_that_are_not_a_model(data: bytes) -> None:
    with pytest.raises(GraphFormatError):
        read_graph(data)
