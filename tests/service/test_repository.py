"""The model repository: every model by name, its newest version served, its contract from its card; a third
model with layer names of its own is served with no change to the service."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.config import Settings
from service.errors import ModelLoadError
from service.repository import load_runtime, scan
from tests.service.clients import in_process_client
from tests.service.metrics import samples
from tests.service.models import copy_repository

pytestmark = pytest.mark.anyio

TINY_LAYERS = ["edges", "pooled", "scores", "probabilities"]


def export_tiny(repository: Path, version: str) -> None:
    """A tiny net whose layers are named like no other model's: edges (4, 28, 28), pooled (4), scores (10)."""
    import torch
    from torch import nn

    from training.export import export_to_repository
    from training.model import DigitNet, Layer

    class TinyNet(DigitNet):
        arch = "tiny"
        description = "one conv, global average pooling, one dense layer"
        layers = (
            Layer("edges", "Conv2d(1, 4, 3, padding=1) + ReLU", "conv"),
            Layer("pooled", "AdaptiveAvgPool2d(1)", "gap"),
            Layer("scores", "Linear(4, 10)", "dense"),
            Layer("probabilities", "Softmax", "probabilities"),
        )
        output_names = ("probabilities", "scores", "edges", "pooled")

        def __init__(self) -> None:
            super().__init__()
            self.edges = nn.Conv2d(1, 4, 3, padding=1)
            self.scores = nn.Linear(4, 10)

        def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            out: dict[str, torch.Tensor] = {}
            out["edges"] = x = torch.relu(self.edges(self.normalise(x)))  # (N, 4, 28, 28)
            out["pooled"] = x = x.mean(dim=(2, 3))  # (N, 4)
            out["logits"] = out["scores"] = x = self.scores(x)  # (N, 10)
            out["probabilities"] = self.probabilities(x)  # (N, 10)
            return out

    torch.manual_seed(int(version))
    export_to_repository(TinyNet().eval(), repository, name="tiny", version=version)


@pytest.fixture(scope="module")
def three_models(random_model: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with the random classic net (mnist_cnn 1) and two versions of the tiny net (tiny 1 and 2)."""
    root = tmp_path_factory.mktemp("three")
    copy_repository(random_model, root)
    for version in ("1", "2"):
        export_tiny(root, version)
    return root


@pytest.fixture
async def three(three_models: Path, anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process_client(Settings(model_repository=three_models)) as client:
        yield client


async def test_list_models_gives_each_model_its_newest_version_and_own_layers(three: httpx.AsyncClient) -> None:
    body = (await three.get("/models")).json()
    assert body["default_model"] == "mnist_cnn"
    models = {model["name"]: model for model in body["models"]}
    assert sorted(models) == ["mnist_cnn", "tiny"]
    assert models["tiny"]["versions"] == ["2"] and models["tiny"]["ready"] is True
    assert [output["name"] for output in models["tiny"]["outputs"]] == TINY_LAYERS
    assert [output["kind"] for output in models["tiny"]["outputs"]] == ["conv", "gap", "dense", "probabilities"]
    assert models["mnist_cnn"]["outputs"][0] == {"name": "conv1", "kind": "conv", "shape": [32, 26, 26]}


async def test_predict_digit_runs_the_model_asked_for(three: httpx.AsyncClient, digit_png: bytes) -> None:
    files = {"file": ("d.png", digit_png, "image/png")}
    tiny = (await three.post("/predict?model=tiny", files=files)).json()
    default = (await three.post("/predict", files=files)).json()
    assert (tiny["model"]["name"], tiny["model"]["version"]) == ("tiny", "2")
    assert default["model"]["name"] == "mnist_cnn"
    assert tiny["probabilities"] != default["probabilities"]


async def test_read_feature_maps_of_the_third_model_gives_its_layers(
    three: httpx.AsyncClient, digit_png: bytes
) -> None:
    files = {"file": ("d.png", digit_png, "image/png")}
    body = (await three.post("/feature-maps?model=tiny&format=compact", files=files)).json()
    assert [(layer["name"], layer["kind"], layer["shape"]) for layer in body["layers"]] == [
        ("edges", "conv", [4, 28, 28]),
        ("pooled", "gap", [4]),
        ("scores", "dense", [10]),
        ("probabilities", "probabilities", [10]),
    ]
    for layer in ("edges", "pooled", "scores", "input"):
        picture = await three.post(f"/feature-maps/{layer}.png?model=tiny", files=files)
        assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG"), layer
    wrong = await three.post("/feature-maps/conv1.png?model=tiny", files=files)
    assert wrong.status_code == 404
    assert wrong.json()["error"] == "unknown layer 'conv1': choose one of input, edges, pooled, scores, probabilities"


async def test_v2_serves_the_third_model_by_its_own_contract(three: httpx.AsyncClient) -> None:
    metadata = (await three.get("/v2/models/tiny")).json()
    assert metadata["versions"] == ["2"]
    assert [(o["name"], o["shape"]) for o in metadata["outputs"]] == [
        ("edges", [-1, 4, 28, 28]),
        ("pooled", [-1, 4]),
        ("scores", [-1, 10]),
        ("probabilities", [-1, 10]),
    ]
    image = {"name": "image", "shape": [1, 784], "datatype": "UINT8", "data": [0] * 392 + [255] * 392}
    response = await three.post("/v2/models/tiny/infer", json={"inputs": [image], "outputs": [{"name": "pooled"}]})
    assert response.status_code == 200
    body = response.json()
    assert (body["model_name"], body["model_version"]) == ("tiny", "2")
    assert body["outputs"][0]["name"] == "pooled" and body["outputs"][0]["shape"] == [1, 4]
    unknown = await three.post("/v2/models/tiny/infer", json={"inputs": [image], "outputs": [{"name": "conv1"}]})
    assert unknown.status_code == 400 and "choose from edges, pooled, scores, probabilities" in unknown.json()["error"]


async def test_repository_index_lists_every_version_found_with_its_state(three: httpx.AsyncClient) -> None:
    index = (await three.post("/v2/repository/index")).json()
    assert [(entry["name"], entry["version"], entry["state"]) for entry in index] == [
        ("mnist_cnn", "1", "READY"),
        ("tiny", "1", "UNAVAILABLE"),
        ("tiny", "2", "READY"),
    ]
    assert index[1]["reason"].startswith("not selected by the version policy (latest 1, the default)")


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("model=nine", "unknown model 'nine': this server serves mnist_cnn, tiny"),
        ("model=tiny&version=1", "unknown version '1' of model 'tiny': this server has version 2 of it"),
    ],
)
async def test_predict_digit_of_a_model_not_served_is_404_naming_what_is(
    three: httpx.AsyncClient, digit_png: bytes, query: str, error: str
) -> None:
    response = await three.post(f"/predict?{query}", files={"file": ("d.png", digit_png, "image/png")})
    assert response.status_code == 404 and response.json() == {"error": error}


async def test_read_model_card_by_name_and_version(three: httpx.AsyncClient, three_models: Path) -> None:
    card = json.loads((three_models / "tiny" / "2" / "card.json").read_text())
    assert (await three.get("/models/tiny")).json()["sha256"] == card["sha256"]
    assert (await three.get("/models/tiny/versions/2")).json()["sha256"] == card["sha256"]
    assert (await three.get("/models/tiny/versions/1")).status_code == 404
    assert (await three.get("/model")).json()["name"] == "mnist_cnn"


async def test_read_metrics_counts_requests_by_model_and_version(three: httpx.AsyncClient, digit_png: bytes) -> None:
    await three.post("/predict?model=tiny", files={"file": ("d.png", digit_png, "image/png")})
    values = samples((await three.get("/metrics")).text)
    assert values[("mnist_inference_requests_total", frozenset({("model", "tiny"), ("version", "2")}))] == 1
    assert values[("mnist_inference_requests_total", frozenset({("model", "mnist_cnn"), ("version", "1")}))] == 0


def test_scan_skips_hidden_and_non_numeric_folders(random_model: tuple[Path, Path], tmp_path: Path) -> None:
    copy_repository(random_model, tmp_path, version="3")
    for name in (".3-staging", "latest", "0", "-1"):
        (tmp_path / "mnist_cnn" / name).mkdir()
    (tmp_path / "mnist_cnn" / "7").write_text("a file, not a folder")
    (tmp_path / ".cache" / "1").mkdir(parents=True)
    found = scan(tmp_path)
    assert list(found) == ["mnist_cnn"] and [folder.version for folder in found["mnist_cnn"]] == ["3"]


def test_scan_refuses_a_repository_without_models(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no models in repository"):
        scan(tmp_path)


def test_load_runtime_refuses_a_card_in_another_version_folder(random_model: tuple[Path, Path], tmp_path: Path) -> None:
    folder = copy_repository(random_model, tmp_path, version="2")
    card = json.loads((folder / "card.json").read_text())
    (folder / "card.json").write_text(json.dumps({**card, "version": "1"}))
    with pytest.raises(ModelLoadError, match="says model 'mnist_cnn' version '1', but it lies in mnist_cnn/2/"):
        load_runtime(scan(tmp_path)["mnist_cnn"][0])


def test_load_runtime_of_the_random_model_reads_its_contract(random_model: tuple[Path, Path]) -> None:
    runtime = load_runtime(scan(random_model[0].parents[2])["mnist_cnn"][0])
    assert runtime.contract.probabilities == "probabilities"
    values = runtime.run(np.zeros((1, 1, 28, 28), np.float32), runtime.contract.output_names)
    assert list(values) == list(runtime.contract.output_names)
