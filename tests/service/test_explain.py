"""Explanations: occlusion and Grad-CAM maps, their API and errors; Grad-CAM's weights checked against the model's
own. (How faithful the maps are, on real digits: test_explain_faithfulness.py.)"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image

from service.config import Settings
from service.explain import GradCam, log_probabilities, occluded, occlusion_map, plan_gradcam
from service.repository import load_runtime, scan
from service.runtime import ModelRuntime
from tests.paths import COMMITTED_MODELS, committed_repository
from tests.service.clients import in_process_client
from tests.service.error_bodies import assert_error

pytestmark = pytest.mark.anyio


def committed_runtime(name: str) -> ModelRuntime:
    return load_runtime(scan(committed_repository())[name][-1])


def gradcam_of(name: str) -> GradCam:
    runtime = committed_runtime(name)
    assert runtime.graph is not None
    plan = plan_gradcam(runtime.contract, runtime.graph)
    assert isinstance(plan, GradCam), plan
    return plan


def test_plan_gradcam_of_the_classic_averages_its_dense_weights_over_conv3() -> None:
    plan = gradcam_of("mnist_cnn")
    weights = {
        t.name: numpy_helper.to_array(t)
        for t in onnx.load(COMMITTED_MODELS["mnist_cnn"] / "model.onnx").graph.initializer
    }
    dense = weights["model.logits.weight"].reshape(10, 128, 3, 3)  # flatten of conv3 (128, 3, 3)
    assert plan.layer == "conv3"
    np.testing.assert_allclose(plan.weights, dense.astype(np.float64).mean(axis=(2, 3)), rtol=1e-9)


def test_plan_gradcam_places_conv3_cells_on_their_receptive_field_centres() -> None:
    # conv3 cell i sees input pixels 4i to 4i + 17 (3x3 convs and 2x2 pools, no padding): centre 4i + 8.5
    plan = gradcam_of("mnist_cnn")
    position = np.clip((np.arange(28) - 8.5) / 4, 0, 2)  # each input row, in conv3 cells
    np.testing.assert_allclose(plan.rows @ np.arange(3), position)
    np.testing.assert_allclose(plan.cols @ np.arange(3), position)


def test_gradcam_of_the_modern_net_sums_to_its_logit_without_bias() -> None:
    # After global average pooling the map is exact: its cells sum to the logit, less the dense bias.
    runtime = committed_runtime("mnist_modern")
    plan = gradcam_of("mnist_modern")
    rng = np.random.default_rng(0)
    images = rng.random((1, 1, 28, 28), dtype=np.float32)
    values = runtime.run(images, (plan.layer, "logits"))
    assert runtime.graph is not None
    bias = runtime.graph.initializers["model.logits.bias"]
    for target in range(10):
        cells = np.tensordot(plan.weights[target], values[plan.layer][0].astype(np.float64), axes=1)
        assert cells.sum() == pytest.approx(values["logits"][0, target] - bias[target], rel=1e-4, abs=1e-4)


def test_occluded_blanks_one_patch_per_copy() -> None:
    image = np.ones((1, 28, 28), np.float32)
    copies, masks = occluded(image, patch=7, stride=3)
    assert copies.shape == (64, 1, 28, 28) and masks.shape == (64, 28, 28)
    assert (masks.sum(axis=(1, 2)) == 49).all() and masks.any(axis=0).all()  # every pixel covered
    np.testing.assert_array_equal(copies[:, 0] == 0, masks)


def test_occlusion_map_is_positive_only_where_the_score_dropped() -> None:
    _, masks = occluded(np.ones((1, 28, 28), np.float32), patch=7, stride=7)  # 16 tiles
    scores = np.zeros(16)
    scores[5] = -2.0  # blanking tile 5 (rows 7-13, columns 7-13) cost the target 2
    attribution = occlusion_map(0.0, scores, masks)
    assert attribution[7:14, 7:14].min() == 2.0 and attribution.sum() == 2.0 * 49


def test_log_probabilities_keep_an_underflowed_class_finite() -> None:
    scores = log_probabilities(np.array([0.0, 1e-12, 1.0], np.float32))
    assert np.isfinite(scores).all() and scores[1] == pytest.approx(np.log(1e-12), rel=1e-6) and scores[2] == 0


# ---- the API -----------------------------------------------------------------------------------------


@pytest.fixture
async def committed(anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process_client(Settings(model_repository=committed_repository())) as client:
        yield client


def upload(png: bytes) -> dict:
    return {"file": ("seven.png", png, "image/png")}


@pytest.mark.parametrize("method", ["occlusion", "gradcam"])
@pytest.mark.parametrize("model", sorted(COMMITTED_MODELS))
async def test_explain_digit_maps_evidence_for_the_predicted_digit(
    committed: httpx.AsyncClient, digit_png: bytes, model: str, method: str
) -> None:
    response = await committed.post(f"/explain?model={model}&method={method}", files=upload(digit_png))
    body = response.json()
    assert response.status_code == 200, body
    assert (body["digit"], body["target"], body["method"], body["model"]["name"]) == (7, 7, method, model)
    attribution, ink = np.array(body["attribution"]["data"]), np.array(body["input"]["data"][0])
    assert attribution.shape == (28, 28) and np.array(body["attribution"]["shape"]).tolist() == [28, 28]
    assert attribution[ink > 0.5].mean() > attribution[ink == 0].mean()  # the stroke counts more than paper


async def test_explain_digit_of_another_target_explains_that_class(
    committed: httpx.AsyncClient, digit_png: bytes
) -> None:
    seven = (await committed.post("/explain", files=upload(digit_png))).json()
    one = (await committed.post("/explain?target=1", files=upload(digit_png))).json()
    assert (one["digit"], one["target"]) == (7, 1) and one["target_probability"] < 0.5
    assert one["attribution"]["data"] != seven["attribution"]["data"]


async def test_explain_digit_occlusion_takes_patch_and_stride(committed: httpx.AsyncClient, digit_png: bytes) -> None:
    body = (await committed.post("/explain?patch=4&stride=4", files=upload(digit_png))).json()
    assert body["parameters"] == {"patch": 4, "stride": 4, "copies": 49}


async def test_draw_explanation_is_a_heatmap_with_a_legend(committed: httpx.AsyncClient, digit_png: bytes) -> None:
    response = await committed.post("/explain.png?method=gradcam&target=3", files=upload(digit_png))
    assert response.headers["content-type"] == "image/png"
    picture = Image.open(io.BytesIO(response.content))
    assert picture.size == (280, 324) and picture.mode == "RGB"


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("method=lime", "unknown method 'lime': choose occlusion or gradcam"),
        ("target=10", "target must be a class from 0 to 9"),
        ("target=-1", "target must be a class from 0 to 9"),
        ("patch=0", "patch must be 1 to 28"),
        ("stride=29", "stride must be 1 to 28"),
        ("targets=1", "unknown query parameter 'targets': did you mean 'target'?"),
    ],
)
async def test_explain_digit_refuses_bad_parameters(
    committed: httpx.AsyncClient, digit_png: bytes, query: str, words: str
) -> None:
    await assert_error(committed, await committed.post(f"/explain?{query}", files=upload(digit_png)), 400, words)


async def test_explain_digit_of_an_unknown_model_is_404(committed: httpx.AsyncClient, digit_png: bytes) -> None:
    await assert_error(committed, await committed.post("/explain?model=lenet", files=upload(digit_png)), 404, "lenet")


async def test_list_models_says_which_methods_each_model_supports(committed: httpx.AsyncClient) -> None:
    models = (await committed.get("/models")).json()["models"]
    assert {model["name"]: model["explanations"] for model in models} == {
        "mnist_cnn": ["occlusion", "gradcam"],
        "mnist_modern": ["occlusion", "gradcam"],
    }


def export_pooled_net(root: Path) -> None:
    """A net whose dense layer reads a max-pool, not a convolution: Grad-CAM's shortcut does not hold."""
    import torch
    from torch import nn

    from training.export import export_to_repository
    from training.model import DigitNet, Layer

    class PooledNet(DigitNet):
        arch = "pooled"
        description = "one conv, a 4x4 max-pool, flatten, dense"
        layers = (
            Layer("edges", "Conv2d(1, 2, 3, padding=1) + ReLU", "conv"),
            Layer("pooled", "MaxPool2d(4)", "pool"),
            Layer("flat", "Flatten", "flatten"),
            Layer("logits", "Linear(98, 10)", "dense"),
            Layer("probabilities", "Softmax", "probabilities"),
        )
        output_names = ("probabilities", "edges", "pooled", "flat", "logits")

        def __init__(self) -> None:
            super().__init__()
            self.edges = nn.Conv2d(1, 2, 3, padding=1)
            self.logits = nn.Linear(98, 10)

        def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            out: dict[str, torch.Tensor] = {}
            out["edges"] = x = torch.relu(self.edges(self.normalise(x)))  # (N, 2, 28, 28)
            out["pooled"] = x = nn.functional.max_pool2d(x, 4)  # (N, 2, 7, 7)
            out["flat"] = x = x.flatten(1)  # (N, 98)
            out["logits"] = x = self.logits(x)  # (N, 10)
            out["probabilities"] = self.probabilities(x)
            return out

    torch.manual_seed(0)
    export_to_repository(PooledNet().eval(), root, name="pooled", version="1")


async def test_explain_digit_with_gradcam_on_a_model_without_it_is_400(
    random_model: tuple[Path, Path], tmp_path: Path, digit_png: bytes, anyio_backend: str
) -> None:
    from tests.service.models import copy_repository

    copy_repository(random_model, tmp_path)
    export_pooled_net(tmp_path)
    async with in_process_client(Settings(model_repository=tmp_path)) as client:
        models = {model["name"]: model["explanations"] for model in (await client.get("/models")).json()["models"]}
        assert models["pooled"] == ["occlusion"]
        refused = await client.post("/explain?model=pooled&method=gradcam", files=upload(digit_png))
        await assert_error(client, refused, 400, "this model has no gradcam", "use occlusion")
        works = await client.post("/explain?model=pooled", files=upload(digit_png))
        assert works.status_code == 200
