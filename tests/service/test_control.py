"""Model control on a running app: versions loaded, replaced, refused and unloaded through the endpoints, each
change verified before it takes traffic; the index, readiness and metrics follow. (Under load, through SIGHUP
and polling, on a real server: tests/reliability/test_rollout.py.)"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
from fastapi import FastAPI

from service.config import Settings
from service.main import create_app
from service.uploads import Upload
from tests.service.clients import in_process_client
from tests.service.error_bodies import assert_error
from tests.service.metrics import samples
from tests.service.models import copy_repository, flip_byte, restamped

pytestmark = pytest.mark.anyio

LOAD = "/v2/repository/models/{}/load"
UNLOAD = "/v2/repository/models/{}/unload"


@pytest.fixture
def root(random_model: tuple[Path, Path], tmp_path: Path) -> Path:
    """A repository of two models, each a copy of the random net at version 1: mnist_cnn and second."""
    copy_repository(random_model, tmp_path)
    copy_repository(random_model, tmp_path, name="second")
    return tmp_path


@pytest.fixture
def control_settings(root: Path) -> Settings:
    return Settings(model_repository=root)


@pytest.fixture
async def served(control_settings: Settings, anyio_backend: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(control_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client


@pytest.fixture
def client(served: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return served[1]


def add_version(random_model: tuple[Path, Path], root: Path, version: str, name: str = "mnist_cnn") -> Path:
    """A copy of the random net as name/version, copied in under a hidden name and renamed (as operators should)."""
    hidden = copy_repository(random_model, root / ".incoming", name=name, version=version)
    target = root / name / version
    target.parent.mkdir(exist_ok=True)
    hidden.rename(target)
    shutil.rmtree(root / ".incoming")
    return target


def write_config(root: Path, policy: dict, name: str = "mnist_cnn") -> None:
    (root / name / "config.json").write_text(json.dumps({"version_policy": policy}))


async def answering(client: httpx.AsyncClient, digit_png: bytes, query: str = "") -> dict[str, str]:
    response = await client.post(f"/predict{query}", files={"file": ("d.png", digit_png, "image/png")})
    assert response.status_code == 200, response.text
    return response.json()["model"]


async def states(client: httpx.AsyncClient, name: str = "mnist_cnn") -> dict[str, tuple[str, str]]:
    index = (await client.post("/v2/repository/index")).json()
    return {row["version"]: (row["state"], row["reason"]) for row in index if row["name"] == name}


async def test_load_model_serves_a_new_version_in_place_of_the_old(
    client: httpx.AsyncClient, root: Path, random_model: tuple[Path, Path], digit_png: bytes
) -> None:
    add_version(random_model, root, "2")
    response = await client.post(LOAD.format("mnist_cnn"))
    assert response.json() == {"name": "mnist_cnn", "loaded": ["2"], "unloaded": ["1"], "serving": ["2"]}
    assert (await answering(client, digit_png))["version"] == "2"
    assert (await states(client))["1"][0] == "UNAVAILABLE"
    await assert_error(
        client, await client.post("/predict?version=1", files={"file": digit_png}), 404, "unknown version '1'"
    )


async def test_load_model_with_policy_all_serves_every_version(
    client: httpx.AsyncClient, root: Path, random_model: tuple[Path, Path], digit_png: bytes
) -> None:
    add_version(random_model, root, "2")
    write_config(root, {"all": {}})
    assert (await client.post(LOAD.format("mnist_cnn"))).json()["serving"] == ["2", "1"]
    assert (await answering(client, digit_png))["version"] == "2"  # no version asked: the newest
    assert (await answering(client, digit_png, "?version=1"))["version"] == "1"


async def test_load_model_with_a_specific_policy_serves_those_versions(
    client: httpx.AsyncClient, root: Path, random_model: tuple[Path, Path], digit_png: bytes
) -> None:
    for version in ("2", "3"):
        add_version(random_model, root, version)
    write_config(root, {"specific": {"versions": [1, 3]}})
    body = (await client.post(LOAD.format("mnist_cnn"))).json()
    assert (body["loaded"], body["serving"]) == (["3"], ["3", "1"])
    assert (await states(client))["2"][1].startswith("not selected by the version policy (specific versions 1, 3)")


async def test_load_model_refuses_a_corrupt_version_and_keeps_serving_the_old(
    client: httpx.AsyncClient, root: Path, random_model: tuple[Path, Path], digit_png: bytes
) -> None:
    flip_byte(add_version(random_model, root, "2") / "model.onnx")
    response = await client.post(LOAD.format("mnist_cnn"))
    await assert_error(client, response, 422, "version 2 refused")
    assert "serving now: version 1" in response.json()["error"]
    state, reason = (await states(client))["2"]
    assert state == "UNAVAILABLE" and "sha256" in reason
    assert (await answering(client, digit_png))["version"] == "1"


async def test_load_model_never_serves_a_half_copied_version(
    client: httpx.AsyncClient, root: Path, random_model: tuple[Path, Path], digit_png: bytes
) -> None:
    folder = root / "mnist_cnn" / "2"
    folder.mkdir()
    shutil.copy(random_model[0], folder / "model.onnx")  # the card is not there yet
    await assert_error(client, await client.post(LOAD.format("mnist_cnn")), 422, "card.json not found")
    assert (await answering(client, digit_png))["version"] == "1"
    (folder / "card.json").write_text(
        json.dumps({**json.loads(random_model[1].read_text()), "name": "mnist_cnn", "version": "2"})
    )
    assert (await client.post(LOAD.format("mnist_cnn"))).json()["serving"] == ["2"]


async def test_load_model_reloads_a_version_whose_files_changed(
    client: httpx.AsyncClient, root: Path, digit_png: bytes
) -> None:
    before = await answering(client, digit_png)
    restamped(root / "mnist_cnn" / "1", "retrained")
    body = (await client.post(LOAD.format("mnist_cnn"))).json()
    assert (body["loaded"], body["unloaded"], body["serving"]) == (["1"], [], ["1"])
    after = await answering(client, digit_png)
    assert after["version"] == "1" and after["sha256"] != before["sha256"]


async def test_load_model_keeps_the_loaded_files_when_their_replacement_is_broken(
    client: httpx.AsyncClient, root: Path, digit_png: bytes
) -> None:
    before = await answering(client, digit_png)
    flip_byte(root / "mnist_cnn" / "1" / "model.onnx")
    await assert_error(client, await client.post(LOAD.format("mnist_cnn")), 422, "version 1 refused")
    assert await answering(client, digit_png) == before
    state, reason = (await states(client))["1"]
    assert state == "READY" and reason.startswith("serving the files loaded before")


async def test_load_model_with_an_unreadable_config_keeps_serving(
    client: httpx.AsyncClient, root: Path, digit_png: bytes
) -> None:
    (root / "mnist_cnn" / "config.json").write_text("{not json")
    await assert_error(client, await client.post(LOAD.format("mnist_cnn")), 422, "config.json is not readable JSON")
    assert (await answering(client, digit_png))["version"] == "1"


async def test_load_model_of_a_folder_that_left_unloads_it(client: httpx.AsyncClient, root: Path) -> None:
    shutil.rmtree(root / "second")
    assert (await client.post(LOAD.format("second"))).json() == {
        "name": "second",
        "loaded": [],
        "unloaded": ["1"],
        "serving": [],
    }
    await assert_error(client, await client.post(LOAD.format("second")), 404, "no model folder 'second'")


async def test_load_model_brings_in_a_new_model(
    client: httpx.AsyncClient, root: Path, random_model: tuple[Path, Path], digit_png: bytes
) -> None:
    add_version(random_model, root, "4", name="third")
    assert (await client.post(LOAD.format("third"))).json()["serving"] == ["4"]
    assert (await answering(client, digit_png, "?model=third"))["version"] == "4"


async def test_unload_model_stops_serving_it_until_it_is_loaded_again(
    client: httpx.AsyncClient, digit_png: bytes
) -> None:
    body = (await client.post(UNLOAD.format("second"))).json()
    assert (body["unloaded"], body["serving"]) == (["1"], [])
    await assert_error(
        client, await client.post("/predict?model=second", files={"file": digit_png}), 404, "unloaded by request"
    )
    assert (await client.get("/v2/models/second/ready")).status_code == 400
    assert (await client.get("/health/ready")).status_code == 200  # the default model still serves
    assert (await states(client, "second"))["1"][0] == "UNAVAILABLE"
    assert (await client.post(LOAD.format("second"))).json()["serving"] == ["1"]
    assert (await answering(client, digit_png, "?model=second"))["name"] == "second"


async def test_unload_model_of_the_default_model_makes_the_server_not_ready(client: httpx.AsyncClient) -> None:
    await client.post(UNLOAD.format("mnist_cnn"))
    await assert_error(client, await client.get("/health/ready"), 503, "the default model is not serving")
    assert (await client.get("/v2/health/ready")).status_code == 400


async def test_load_and_unload_of_an_unknown_model_are_404(client: httpx.AsyncClient) -> None:
    await assert_error(client, await client.post(LOAD.format("nine")), 404, "no model folder 'nine'")
    await assert_error(client, await client.post(UNLOAD.format("nine")), 404, "unknown model 'nine'")


async def test_load_model_refuses_options_it_does_not_take(client: httpx.AsyncClient) -> None:
    response = await client.post(LOAD.format("mnist_cnn"), json={"parameters": {"config": "{}"}})
    await assert_error(client, response, 400, "unknown option 'parameters'")


async def test_read_repository_index_lists_only_ready_versions_when_asked(
    client: httpx.AsyncClient, root: Path, random_model: tuple[Path, Path]
) -> None:
    flip_byte(add_version(random_model, root, "2") / "model.onnx")
    await client.post(LOAD.format("mnist_cnn"))
    ready = (await client.post("/v2/repository/index", json={"ready": True})).json()
    assert {(row["name"], row["version"]) for row in ready} == {("mnist_cnn", "1"), ("second", "1")}


async def test_check_model_version_ready_follows_each_version(
    client: httpx.AsyncClient, root: Path, random_model: tuple[Path, Path]
) -> None:
    add_version(random_model, root, "2")
    await client.post(LOAD.format("mnist_cnn"))
    codes = [(await client.get(f"/v2/models/mnist_cnn/versions/{v}/ready")).status_code for v in ("1", "2", "3")]
    assert codes == [400, 200, 404]  # found but not selected; served; unknown
    assert (await client.get("/v2/models/nine/ready")).status_code == 404


async def test_read_metrics_counts_loads_and_unloads_by_outcome(
    client: httpx.AsyncClient, root: Path, random_model: tuple[Path, Path]
) -> None:
    add_version(random_model, root, "2")
    await client.post(LOAD.format("mnist_cnn"))
    flip_byte(add_version(random_model, root, "3") / "model.onnx")
    await client.post(LOAD.format("mnist_cnn"))
    found = samples((await client.get("/metrics")).text)
    assert found[("mnist_model_loads_total", frozenset({("model", "mnist_cnn"), ("outcome", "success")}))] == 2
    assert found[("mnist_model_loads_total", frozenset({("model", "mnist_cnn"), ("outcome", "failure")}))] == 1
    assert found[("mnist_model_unloads_total", frozenset({("model", "mnist_cnn"), ("outcome", "success")}))] == 1
    assert found[("mnist_model_load_duration_seconds_count", frozenset({("model", "mnist_cnn")}))] == 3
    served = {dict(labels)["version"] for name, labels in found if name == "mnist_model_info"}
    assert served == {"2", "1"}  # mnist_cnn 2 and second 1; mnist_cnn 1 left with its unload


async def test_load_model_waits_for_the_requests_that_hold_the_old_version(
    served: tuple[FastAPI, httpx.AsyncClient], root: Path, random_model: tuple[Path, Path], digit_png: bytes
) -> None:
    app, client = served
    repository = app.state.repository
    add_version(random_model, root, "2")
    finished: list[dict] = []

    async def load() -> None:
        finished.append((await client.post(LOAD.format("mnist_cnn"))).json())

    old = repository.resolve().__enter__()  # a request between its body and its answer, on version 1
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(load)
        with anyio.fail_after(30):
            while repository.resolve().version != "2":  # the swap: new requests go to version 2 ...
                await anyio.sleep(0.01)
        await anyio.wait_all_tasks_blocked()
        assert not finished  # ... while the load waits for version 1's last request,
        answer = await old.predictor.predict([Upload(digit_png)])
        assert answer[0]["model"]["version"] == "1"  # which still runs on version 1
        old.__exit__(None, None, None)
    assert finished[0]["unloaded"] == ["1"]


async def test_load_model_with_model_control_none_is_403(root: Path, anyio_backend: str) -> None:
    async with in_process_client(Settings(model_repository=root, model_control="none")) as client:
        await assert_error(client, await client.post(LOAD.format("mnist_cnn")), 403, "MNIST_MODEL_CONTROL=none")
        assert (await client.post("/v2/repository/index")).status_code == 200  # reading is always allowed


async def test_load_model_needs_an_api_key_when_keys_are_set(root: Path, anyio_backend: str) -> None:
    async with in_process_client(Settings(model_repository=root, api_keys="k1")) as client:
        await assert_error(client, await client.post(UNLOAD.format("mnist_cnn")), 401, "needs an API key")
        response = await client.post(UNLOAD.format("second"), headers={"X-API-Key": "k1"})
        assert response.json()["unloaded"] == ["1"]


async def test_reread_loads_new_models_drops_removed_ones_and_leaves_unloaded_ones(
    served: tuple[FastAPI, httpx.AsyncClient], root: Path, random_model: tuple[Path, Path]
) -> None:
    app, client = served
    await client.post(UNLOAD.format("second"))
    add_version(random_model, root, "1", name="third")
    shutil.rmtree(root / "mnist_cnn" / "1")
    add_version(random_model, root, "2")
    changes = await app.state.model_control.reread("test")
    assert [(c.name, c.loaded, c.unloaded) for c in changes] == [("mnist_cnn", ["2"], ["1"]), ("third", ["1"], [])]
    assert app.state.repository.names == ["mnist_cnn", "third"]  # second stays unloaded, as asked


async def test_reread_retries_a_refused_version_only_when_its_files_change(
    served: tuple[FastAPI, httpx.AsyncClient], root: Path, random_model: tuple[Path, Path]
) -> None:
    app, client = served
    folder = root / "mnist_cnn" / "2"
    folder.mkdir()
    shutil.copy(random_model[0], folder / "model.onnx")  # half copied: no card yet
    for _ in range(3):
        await app.state.model_control.reread("test")
    failures = ("mnist_model_loads_total", frozenset({("model", "mnist_cnn"), ("outcome", "failure")}))
    assert samples((await client.get("/metrics")).text)[failures] == 1
    write_card = {**json.loads(random_model[1].read_text()), "name": "mnist_cnn", "version": "2"}
    (folder / "card.json").write_text(json.dumps(write_card))
    await app.state.model_control.reread("test")
    assert app.state.repository.versions("mnist_cnn") == ["2"]


async def test_reread_reports_an_unreadable_config_once_until_it_changes(
    served: tuple[FastAPI, httpx.AsyncClient], root: Path, digit_png: bytes
) -> None:
    app, client = served
    (root / "mnist_cnn" / "config.json").write_text("{not json")
    reports = [bool(await app.state.model_control.reread("test")) for _ in range(3)]
    assert reports == [True, False, False]  # one warning, not one per poll
    assert (await answering(client, digit_png))["version"] == "1"
    write_config(root, {"all": {}})
    assert [c.name for c in await app.state.model_control.reread("test")] == []  # readable again, nothing new
    assert (await states(client))["1"] == ("READY", "")
