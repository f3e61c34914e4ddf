"""The server's control plane, as bench/rollout.py's client sees it: control calls, the index, what serves."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from bench.load import DIGIT_PNG, multipart
from bench.rollout_files import MODEL, Identity
from bench.servers import Server

READY, UNAVAILABLE = "READY", "UNAVAILABLE"
WAIT_EVERY = 0.05  # seconds between looks at the repository index
WAIT_TIMEOUT = 60.0  # seconds; only turns a hang into an error


class RolloutError(RuntimeError):
    """A step did not reach its state, or a control call answered what the spec says it should not."""


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data[:300].decode(errors="replace")


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT_TIMEOUT) -> None:
    """Look at condition every WAIT_EVERY s until it holds; RolloutError after timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RolloutError(f"still waiting for {what} after {timeout:g} s")
        time.sleep(WAIT_EVERY)


class Control:
    """Calls to one server: the control endpoints, the repository index, which bytes of MODEL serve."""

    def __init__(self, server: Server) -> None:
        self.url = server.url
        self._form = multipart("file", [DIGIT_PNG.read_bytes()])

    def call(self, method: str, path: str, body: bytes | None = None, content_type: str = "") -> tuple[int, Any]:
        """(status, JSON body, or the start of the text) of one request."""
        headers = {"Content-Type": content_type} if content_type else {}
        request = urllib.request.Request(self.url + path, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=WAIT_TIMEOUT) as response:
                return response.status, _json(response.read())
        except urllib.error.HTTPError as err:
            return err.code, _json(err.read())

    def control(self, name: str, action: str) -> tuple[int, Any]:
        """POST /v2/repository/models/<name>/<action> (load or unload), with an empty body."""
        return self.call("POST", f"/v2/repository/models/{name}/{action}", b"")

    def load(self, name: str, **expected: Any) -> float:
        """Seconds a load call of name took; RolloutError unless it answers 200 with the expected fields."""
        started = time.monotonic()
        status, body = self.control(name, "load")
        took = time.monotonic() - started
        if status != 200 or not isinstance(body, dict) or any(body.get(k) != v for k, v in expected.items()):
            raise RolloutError(f"POST /v2/repository/models/{name}/load answered {status} {body}; expected {expected}")
        return took

    def index(self) -> list[dict[str, str]]:
        status, body = self.call("POST", "/v2/repository/index", b"")
        if status != 200 or not isinstance(body, list):
            raise RolloutError(f"POST /v2/repository/index answered {status} {body}")
        return body

    def serving(self, index: list[dict[str, str]]) -> frozenset[Identity] | None:
        """(version, sha256) of each MODEL version READY in index, sha256 from its card; None if one vanished."""
        found = set()
        for entry in index:
            if entry["name"] == MODEL and entry["state"] == READY:
                status, card = self.call("GET", f"/models/{MODEL}/versions/{entry['version']}")
                if status != 200:
                    return None
                found.add((entry["version"], card["sha256"]))
        return frozenset(found)

    def ask(self, name: str, version: str | None = None) -> tuple[int, str]:
        """(status, who answered: "name version", or the error) of one /predict?model=name."""
        query = f"?model={name}" + (f"&version={version}" if version else "")
        status, body = self.call("POST", "/predict" + query, self._form.data, self._form.content_type)
        if status == 200:
            return status, f"{body['model']['name']} {body['model']['version']}"
        return status, str(body.get("error", body) if isinstance(body, dict) else body)


def entry(index: list[dict[str, str]], name: str, version: str) -> dict[str, str] | None:
    return next((e for e in index if e["name"] == name and e["version"] == version), None)


def refused(version: str) -> Callable[[list[dict[str, str]]], bool]:
    """The index lists MODEL's version as UNAVAILABLE, with a reason."""

    def check(index: list[dict[str, str]]) -> bool:
        found = entry(index, MODEL, version)
        return found is not None and found["state"] == UNAVAILABLE and bool(found["reason"])

    return check


def ready(name: str, serves: bool = True) -> Callable[[list[dict[str, str]]], bool]:
    """Some version of the model is READY in the index (serves=False: none is)."""
    return lambda index: any(e["name"] == name and e["state"] == READY for e in index) == serves
