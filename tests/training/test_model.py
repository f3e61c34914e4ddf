import pytest
import torch

from training.architectures import ARCHITECTURES, build_model
from training.model import KINDS, LAYER_NAMES, MnistCNN, format_layer_table, layer_table

EXPECTED = {
    "conv1": ([32, 26, 26], 320),
    "pool1": ([32, 13, 13], 0),
    "conv2": ([64, 11, 11], 18_496),
    "pool2": ([64, 5, 5], 0),
    "conv3": ([128, 3, 3], 73_856),
    "flatten": ([1152], 0),
    "logits": ([10], 11_530),
    "probabilities": ([10], 0),
}


def test_layer_table_matches_design_note():
    rows = {r["name"]: r for r in layer_table(MnistCNN())}
    assert list(rows) == list(LAYER_NAMES)
    for name, (shape, params) in EXPECTED.items():
        assert rows[name]["output_shape"] == ["N", *shape], name
        assert rows[name]["parameters"] == params, name


def test_total_parameters_is_104202():
    assert sum(p.numel() for p in MnistCNN().parameters()) == 104_202
    assert "104,202" in format_layer_table(layer_table(MnistCNN()))


def test_features_give_every_layer_for_a_batch():
    out = MnistCNN().features(torch.rand(3, 1, 28, 28))
    for name, (shape, _) in EXPECTED.items():
        assert list(out[name].shape) == [3, *shape], name
    torch.testing.assert_close(out["probabilities"].sum(1), torch.ones(3))


def test_conv_outputs_are_after_relu():
    out = MnistCNN().features(torch.rand(2, 1, 28, 28))
    for name in ("conv1", "conv2", "conv3"):
        assert out[name].min() >= 0, name


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_layer_kinds_are_in_the_vocabulary_with_their_layout(arch):
    for row in layer_table(build_model(arch)):
        layout = KINDS[row["kind"]][0]
        assert len(row["output_shape"]) == (4 if layout == "spatial" else 2), row


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_layer_table_parameters_add_up_to_the_model(arch):
    model = build_model(arch)
    assert sum(r["parameters"] for r in layer_table(model)) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_temperature_divides_logits_in_probabilities(arch):
    model = build_model(arch).eval()
    x = torch.rand(4, 1, 28, 28)
    model.temperature = 0.5
    out = model.features(x)
    torch.testing.assert_close(out["probabilities"], torch.softmax(out["logits"] / 0.5, dim=1))


def test_build_model_unknown_architecture_names_the_choices():
    with pytest.raises(ValueError, match="classic, modern"):
        build_model("vgg")
