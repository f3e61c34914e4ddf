import torch

from training.model import layer_table
from training.modern import ModernCNN, ModernConfig

CLASSIC_PARAMETERS = 104_202
EXPECTED_SHAPES = {
    "stem": [16, 28, 28],
    "block1": [32, 14, 14],
    "block2": [128, 7, 7],
    "block3": [128, 7, 7],
    "gap": [128],
    "logits": [10],
    "probabilities": [10],
}


def test_modern_has_no_more_parameters_than_the_classic():
    assert sum(p.numel() for p in ModernCNN().parameters()) <= CLASSIC_PARAMETERS


def test_modern_layer_table_names_shapes_and_kinds():
    rows = layer_table(ModernCNN())
    assert [r["name"] for r in rows] == list(EXPECTED_SHAPES)
    assert {r["name"]: r["output_shape"][1:] for r in rows} == EXPECTED_SHAPES
    assert [r["kind"] for r in rows] == ["conv", "block", "block", "block", "gap", "dense", "probabilities"]


def test_modern_outputs_put_probabilities_first_then_forward_order():
    assert ModernCNN().output_names == ("probabilities", "logits", "stem", "block1", "block2", "block3", "gap")


def test_modern_features_give_every_layer_for_a_batch():
    out = ModernCNN().eval().features(torch.rand(3, 1, 28, 28))
    for name, shape in EXPECTED_SHAPES.items():
        assert list(out[name].shape) == [3, *shape], name
    torch.testing.assert_close(out["probabilities"].sum(1), torch.ones(3))


def test_modern_block_outputs_are_after_relu():
    out = ModernCNN().eval().features(torch.rand(2, 1, 28, 28))
    for name in ("stem", "block1", "block2", "block3", "gap"):
        assert out[name].min() >= 0, name


def test_modern_gap_is_the_mean_of_the_last_block():
    out = ModernCNN().eval().features(torch.rand(2, 1, 28, 28))
    torch.testing.assert_close(out["gap"], out["block3"].mean(dim=(2, 3)))


def test_modern_has_batch_norm_and_depthwise_convolutions():
    modules = list(ModernCNN().modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in modules)
    depthwise = [m for m in modules if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert depthwise and all(m.groups == m.in_channels == m.out_channels for m in depthwise)


def test_modern_config_changes_the_table():
    model = ModernCNN(ModernConfig(stem_channels=8, widths=(16, 32), strides=(2, 2)))
    rows = {r["name"]: r["output_shape"] for r in layer_table(model)}
    assert rows["block2"] == ["N", 32, 7, 7] and "block3" not in rows
