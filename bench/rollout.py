"""Live model control under steady load, and memory across loads: the figures behind docs/models.md.

While `clients` threads keep asking mnist_cnn (half POST /predict, half V2 infer), one of three mechanisms
changes what the server serves: the control endpoints (POST /v2/repository/models/<name>/load and /unload),
SIGHUP, or polling (MNIST_MODEL_CONTROL=poll). Each runs the same steps on a copy of the committed models: add
version 2, replace it in place, drop in a broken 3, (SIGHUP and poll) a half-copied 4 whose card comes later,
remove the newest versions, unload mnist_modern and load it again.

Every answer names the version that computed it (/predict also its sha256). An answer sent at a and received at
b is valid if that identity belongs to a state whose interval meets [a, b]: the state after step k is valid
from the start of step k to the confirmation of step k + 1 (the first state from time 0). Any other answer is
a violation; any status but 200, and any exception, is a failure.

    python -m bench.rollout [--seconds 30] [--clients 32] [--cycles 20]

prints Markdown tables (progress on stderr); tests/reliability/test_rollout.py asserts on the same results.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.load import DIGIT_PNG, multipart
from bench.servers import COMMITTED_REPOSITORY, Server, service_env

MODEL, OTHER = "mnist_cnn", "mnist_modern"  # the load asks MODEL only; OTHER is unloaded and loaded again
CLASSIC = COMMITTED_REPOSITORY / MODEL / "1"  # every version of MODEL made here is a copy of it
MECHANISMS = ("endpoint", "SIGHUP", "poll")
READY, UNAVAILABLE = "READY", "UNAVAILABLE"
POLL_S = 0.5  # MNIST_REPOSITORY_POLL_S of the poll run
WAIT_EVERY = 0.05  # seconds between looks at the repository index
WAIT_TIMEOUT = 60.0  # seconds; only turns a hang into an error
REQUEST_TIMEOUT = 30.0  # seconds a request of the load may take before it counts as failed
TRAFFIC = 20  # answers of each kind every state gives before the next step: it takes traffic
# The steps the tests look up by name (see plan)
BROKEN = "drop in a broken version 3"
HALF_COPIED = "half-copied version 4: model.onnx, no card"
CARD_ARRIVES = "version 4's card.json arrives"
UNLOAD_OTHER, RELOAD_OTHER = f"unload {OTHER}", f"load {OTHER} again"
Identity = tuple[str, str]  # (version, sha256) of MODEL


class RolloutError(RuntimeError):
    """A step did not reach its state, or a control call answered what the spec says it should not."""


def log(message: str) -> None:
    print(f"[rollout {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---- the load ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """One request of the load: its kind, when it left and came back (time.monotonic), who answered."""

    kind: str  # "predict" or "v2"
    sent: float
    received: float
    status: int  # 0 when no HTTP answer came (an exception)
    version: str | None = None
    sha256: str | None = None  # /predict only: V2 answers name no sha256
    error: str = ""  # what went wrong, for a failure

    @property
    def failed(self) -> bool:
        return self.status != 200 or self.version is None

    def describe(self, origin: float) -> str:
        who = f"version {self.version} (sha256 {(self.sha256 or '-')[:12]})" if self.version else self.error
        return f"{self.kind} sent at {self.sent - origin:.3f} s, back after {self.received - self.sent:.3f} s: " + (
            f"{self.status} {who}" if self.status else who
        )


def load_requests() -> dict[str, tuple[str, str, bytes]]:
    """(path, Content-Type, body) of each kind: the digit as form field `file`, and as V2 UINT8 [1, 784]."""
    form = multipart("file", [DIGIT_PNG.read_bytes()])
    pixels = np.asarray(Image.open(DIGIT_PNG).convert("L"), np.uint8).ravel().tolist()  # (784,) 0-255
    infer = {
        "inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 784], "data": pixels}],
        "outputs": [{"name": "probabilities"}],
    }
    return {
        "predict": ("/predict", form.content_type, form.data),
        "v2": (f"/v2/models/{MODEL}/infer", "application/json", json.dumps(infer).encode()),
    }


def read_answer(kind: str, sent: float, received: float, status: int, data: bytes) -> Answer:
    """The Answer to one request, from its status and body; a 200 that names no MODEL version is a failure."""
    if status != 200:
        return Answer(kind, sent, received, status, error=data[:300].decode(errors="replace"))
    try:
        body = json.loads(data)
        model = body["model"] if kind == "predict" else {"name": body["model_name"], "version": body["model_version"]}
        name, version = model["name"], str(model["version"])
    except (ValueError, KeyError, TypeError) as err:
        return Answer(kind, sent, received, status, error=f"unreadable answer ({err!r}): {data[:200]!r}")
    if name != MODEL:
        return Answer(kind, sent, received, status, error=f"answered by model {name!r}, not {MODEL}")
    return Answer(kind, sent, received, status, version, model.get("sha256"))


class Load:
    """`clients` threads asking MODEL over persistent connections, half /predict, half V2 infer, until stopped."""

    def __init__(self, port: int, clients: int = 32) -> None:
        self.port = port
        self.started = self.stopped = 0.0
        self._requests = load_requests()
        self._answers: list[list[Answer]] = [[] for _ in range(clients)]  # one list per thread
        self._counts: Counter[tuple[str, str | None, str | None]] = Counter()  # (kind, version, sha256)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        kinds = ("predict", "v2")
        self._threads = [
            threading.Thread(target=self._client, args=(kinds[i % 2], self._answers[i]), daemon=True)
            for i in range(clients)
        ]

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT + 5)
        self.stopped = time.monotonic()

    def answers(self) -> list[Answer]:
        """Every answer so far, in the order they were sent."""
        return sorted((answer for answers in self._answers for answer in answers), key=lambda answer: answer.sent)

    def answered_by(self, serving: frozenset[Identity]) -> tuple[int, int]:
        """(/predict answers, V2 answers) so far from the identities in serving (V2: from their versions)."""
        with self._lock:
            predict = sum(self._counts["predict", version, sha] for version, sha in serving)
            v2 = sum(self._counts["v2", version, None] for version in {version for version, _ in serving})
        return predict, v2

    def hold_until(self, deadline: float) -> None:
        """Keep the load running until deadline (time.monotonic); a duration of load, not a synchronisation."""
        self._stop.wait(max(0.0, deadline - time.monotonic()))

    def _client(self, kind: str, answers: list[Answer]) -> None:
        path, content_type, body = self._requests[kind]
        headers = {"Content-Type": content_type}
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                connection.request("POST", path, body, headers)
                response = connection.getresponse()
                data = response.read()
                answer = read_answer(kind, sent, time.monotonic(), response.status, data)
            except (OSError, http.client.HTTPException) as err:
                answer = Answer(kind, sent, time.monotonic(), 0, error=f"{type(err).__name__}: {err}")
                connection.close()  # NOTE: http.client opens a new connection for the next request
            answers.append(answer)
            with self._lock:
                self._counts[kind, answer.version, answer.sha256] += 1
        connection.close()


# ---- the repository on disk ----------------------------------------------------------------------------------


def classic_files(version: str, variant: str = "copy", note: str = "") -> tuple[bytes, bytes]:
    """(model.onnx, card.json) of the committed classic as `version`: a "copy", "rebuilt" (other valid bytes,
    the graph's doc_string set to note) or "broken" (a byte flipped after its card's sha256 was taken)."""
    model = (CLASSIC / "model.onnx").read_bytes()
    if variant == "rebuilt":
        import onnx  # NOTE: here only: the train extra's package, which nothing else in bench needs

        proto = onnx.load_from_string(model)
        proto.graph.doc_string = note
        model = proto.SerializeToString()
    card = json.loads((CLASSIC / "card.json").read_text())
    card.update(version=version, sha256=hashlib.sha256(model).hexdigest())
    if variant == "broken":
        flipped = bytearray(model)
        flipped[len(flipped) // 2] ^= 0xFF
        model = bytes(flipped)
    return model, json.dumps(card, indent=2).encode()


def replace_file(path: Path, data: bytes) -> None:
    """Write data to path in one step: into a hidden file beside it, then os.replace."""
    part = path.with_name(f".{path.name}.part")
    part.write_bytes(data)
    os.replace(part, path)


class Repository:
    """A copy of the committed models, changed as an operator would: version folders renamed in and out whole."""

    def __init__(self, root: Path, policy: dict[str, Any] | None = None) -> None:
        self.root = root
        for name in (MODEL, OTHER):
            shutil.copytree(COMMITTED_REPOSITORY / name / "1", root / name / "1")
        if policy is not None:
            (root / MODEL / "config.json").write_text(json.dumps({"version_policy": policy}))
        self.sha256 = {"1": json.loads((CLASSIC / "card.json").read_text())["sha256"]}  # MODEL's complete versions
        self._cards: dict[str, bytes] = {}  # the cards of half-copied versions, still to come
        self._rebuilds = 0

    def serving(self) -> frozenset[Identity]:
        """What the default policy (latest, 1 version) serves of MODEL: its newest complete, valid version."""
        newest = max(self.sha256, key=int)
        return frozenset({(newest, self.sha256[newest])})

    def add(self, version: str, variant: str = "copy") -> None:
        model, card = classic_files(version, variant)
        self._rename_in(version, {"model.onnx": model, "card.json": card})
        if variant != "broken":
            self.sha256[version] = json.loads(card)["sha256"]

    def add_model_only(self, version: str) -> None:
        """A half-copied version: its folder holds model.onnx, its card comes with add_card."""
        model, self._cards[version] = classic_files(version)
        self._rename_in(version, {"model.onnx": model})

    def add_card(self, version: str) -> None:
        card = self._cards.pop(version)
        replace_file(self._folder(version) / "card.json", card)
        self.sha256[version] = json.loads(card)["sha256"]

    def replace(self, version: str) -> None:
        """Other valid bytes and their card for a version, in place: model.onnx swapped first, then card.json."""
        self._rebuilds += 1
        model, card = classic_files(version, "rebuilt", f"rebuilt {self._rebuilds} for the rollout bench")
        replace_file(self._folder(version) / "model.onnx", model)
        replace_file(self._folder(version) / "card.json", card)
        self.sha256[version] = json.loads(card)["sha256"]

    def remove(self, *versions: str) -> None:
        for version in versions:
            gone = self._folder(f".{version}-removed")  # hidden: the server's scan skips it while it is deleted
            self._folder(version).rename(gone)
            shutil.rmtree(gone)
            self.sha256.pop(version, None)

    def move_out(self, name: str) -> None:
        (self.root / name).rename(self._away(name))

    def move_back(self, name: str) -> None:
        self._away(name).rename(self.root / name)

    def _folder(self, version: str) -> Path:
        return self.root / MODEL / version

    def _away(self, name: str) -> Path:
        return self.root.parent / f"{self.root.name}-{name}-away"

    def _rename_in(self, version: str, files: dict[str, bytes]) -> None:
        staging = self._folder(f".{version}")  # hidden: the server's scan skips it until the rename
        staging.mkdir()
        for name, data in files.items():
            (staging / name).write_bytes(data)
        staging.rename(self._folder(version))


# ---- the server's control plane, as a client sees it ----------------------------------------------------------


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


# ---- a scenario: steps, each confirmed, timed and kept ------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One step: what changes on disk, the control call that applies it (endpoint runs), what it leads to."""

    name: str
    files: Callable[[], None] | None  # the change on disk; None: the endpoint run's call is the change
    model: str = MODEL
    action: str = "load"  # the endpoint run's call: POST /v2/repository/models/<model>/<action>
    status: int = 200  # what that call answers
    check: Callable[[list[dict[str, str]]], bool] = lambda index: True  # on the index, beyond what serves
    probe: bool = False  # ask the model once the step is confirmed (a /predict?model=)


@dataclass(frozen=True)
class Step:
    """A step as it happened: from started (time.monotonic) to confirmed, then MODEL served `serving`."""

    name: str
    started: float
    confirmed: float
    serving: frozenset[Identity]
    index: list[dict[str, str]]  # the repository index that confirmed it
    response: tuple[int, Any] | None = None  # the control call's (status, body), endpoint runs only

    @property
    def seconds(self) -> float:
        return self.confirmed - self.started


def plan(mechanism: str, files: Repository) -> list[Change]:
    """The steps of one mechanism's run, in order."""
    endpoint = mechanism == "endpoint"
    changes = [
        Change("add version 2", lambda: files.add("2")),
        Change("replace version 2 in place", lambda: files.replace("2")),
        Change(BROKEN, lambda: files.add("3", "broken"), status=422, check=refused("3")),
    ]
    if endpoint:
        changes.append(Change("remove versions 3 and 2", lambda: files.remove("3", "2")))
    else:
        changes += [
            Change(HALF_COPIED, lambda: files.add_model_only("4"), check=refused("4")),
            Change(CARD_ARRIVES, lambda: files.add_card("4")),
            Change("remove versions 4 and 3", lambda: files.remove("4", "3")),
        ]
    away = None if endpoint else (lambda: files.move_out(OTHER))
    back = None if endpoint else (lambda: files.move_back(OTHER))
    return changes + [
        Change(UNLOAD_OTHER, away, OTHER, "unload", check=ready(OTHER, serves=False), probe=True),
        Change(RELOAD_OTHER, back, OTHER, check=ready(OTHER), probe=True),
    ]


class Rollout:
    """One mechanism's run: the plan's changes applied while the load runs, each confirmed before the next."""

    def __init__(self, mechanism: str, server: Server, files: Repository, load: Load) -> None:
        self.mechanism, self.server, self.files, self.load = mechanism, server, files, load
        self.control = Control(server)
        self.probes: dict[str, tuple[int, str]] = {}  # step name: what OTHER answered after it
        index = self.control.index()
        serving = self.control.serving(index)
        if serving != files.serving():
            raise RolloutError(f"the server starts serving {serving} of {MODEL}, not {files.serving()}: {index}")
        self.steps = [Step("start", 0.0, time.monotonic(), serving, index)]

    def run(self, changes: list[Change], seconds: float) -> None:
        """The changes spread over `seconds` of load (each state takes traffic a while), then load to the end."""
        self._wait_for_traffic(self.steps[0].serving)
        slot = seconds / (len(changes) + 1)
        for number, change in enumerate(changes, 1):
            self.load.hold_until(self.load.started + number * slot)
            self.apply(change)
        self.load.hold_until(self.load.started + seconds)

    def apply(self, change: Change) -> None:
        log(f"{self.mechanism}: {change.name}")
        started = time.monotonic()
        if change.files is not None:
            change.files()
        response = self._trigger(change)
        confirmed = time.monotonic()  # endpoint: the call returns once the change is complete
        expected, seen = self.files.serving(), []

        def reached() -> bool:
            seen.append(self.control.index())
            return self.control.serving(seen[-1]) == expected and change.check(seen[-1])

        if response is None:
            try:
                wait_until(reached, f"{change.name}: {MODEL} serving {sorted(expected)}")
            except RolloutError as err:
                raise RolloutError(f"{err}; {self._last(seen)}") from None
            confirmed = time.monotonic()
        elif response[0] != change.status or not reached():
            raise RolloutError(
                f"{change.name}: POST /v2/repository/models/{change.model}/{change.action} answered {response}, "
                f"expected {change.status} with {MODEL} serving {sorted(expected)}; then {self._last(seen)}"
            )
        self.steps.append(Step(change.name, started, confirmed, expected, seen[-1], response))
        if change.probe:
            self.probes[change.name] = self.control.ask(OTHER)
        self._wait_for_traffic(expected)

    def _trigger(self, change: Change) -> tuple[int, Any] | None:
        if self.mechanism == "endpoint":
            return self.control.control(change.model, change.action)
        if self.mechanism == "SIGHUP":
            os.kill(self.server.pid, signal.SIGHUP)
        return None

    def _last(self, seen: list[list[dict[str, str]]]) -> str:
        return f"the index said {seen[-1]}" if seen else "no index read"

    def _wait_for_traffic(self, serving: frozenset[Identity]) -> None:
        before = self.load.answered_by(serving)
        wait_until(
            lambda: all(
                now >= then + TRAFFIC for now, then in zip(self.load.answered_by(serving), before, strict=True)
            ),
            f"{TRAFFIC} more answers of each kind from {sorted(serving)}",
        )


def outside_timeline(answers: list[Answer], steps: list[Step]) -> list[Answer]:
    """The answers (not failed) whose identity no state had while they were in flight (see the module's doc)."""
    intervals = [
        (step.started, steps[k + 1].confirmed if k + 1 < len(steps) else math.inf, step.serving)
        for k, step in enumerate(steps)
    ]

    def valid(answer: Answer) -> bool:
        for start, until, serving in intervals:
            if answer.sent <= until and answer.received >= start:
                if answer.sha256 is None and answer.version in {version for version, _ in serving}:
                    return True
                if (answer.version, answer.sha256) in serving:
                    return True
        return False

    return [answer for answer in answers if not answer.failed and not valid(answer)]


@dataclass
class ScenarioResult:
    """One mechanism's run: every answer, every step, what OTHER answered after its steps, the server's log."""

    mechanism: str
    answers: list[Answer]
    steps: list[Step]
    probes: dict[str, tuple[int, str]]
    started: float
    stopped: float
    log_path: Path | None

    @cached_property
    def failures(self) -> list[Answer]:
        return [answer for answer in self.answers if answer.failed]

    @cached_property
    def violations(self) -> list[Answer]:
        return outside_timeline(self.answers, self.steps)

    def step(self, name: str) -> Step | None:
        """The step of that name (see plan), None if this mechanism's run has none."""
        return next((step for step in self.steps if step.name == name), None)

    def examples(self, answers: list[Answer], count: int = 5) -> str:
        """A few of answers, one a line, times from the start of the load; and where the server's log is."""
        lines = [answer.describe(self.started) for answer in answers[:count]]
        more = f"\n... and {len(answers) - count} more" if len(answers) > count else ""
        return f"{len(answers)} of {len(self.answers)}:\n" + "\n".join(lines) + more + f"\nserver log: {self.log_path}"

    def timeline(self) -> str:
        return "\n".join(
            f"{step.started - self.started:8.3f} .. {step.confirmed - self.started:8.3f} s  {step.name}: "
            f"{sorted((v, sha[:12]) for v, sha in step.serving)}"
            for step in self.steps[1:]
        )


def run_scenario(mechanism: str, workdir: Path, seconds: float = 30.0, clients: int = 32) -> ScenarioResult:
    """A fresh server on a fresh copy of the models (poll mode for "poll"), the plan run under load."""
    workdir.mkdir(parents=True, exist_ok=True)
    files = Repository(workdir / "models")
    control = "poll" if mechanism == "poll" else "explicit"
    env = service_env(files.root, MNIST_MODEL_CONTROL=control, MNIST_REPOSITORY_POLL_S=str(POLL_S))
    server = Server.for_service(env, name=f"rollout-{mechanism}")
    try:
        with server.running(workdir), Load(server.port, clients) as load:
            rollout = Rollout(mechanism, server, files, load)
            rollout.run(plan(mechanism, files), seconds)
    except RolloutError as err:
        lines = [line for line in server.log().splitlines() if 'HTTP/1.1" 200' not in line]  # no access log 200s
        tail = "\n".join(lines[-40:])
        raise RolloutError(f"{mechanism}: {err}\nthe server's log but 200s ({server.log_path}):\n{tail}") from None
    return ScenarioResult(
        mechanism, load.answers(), rollout.steps, rollout.probes, load.started, load.stopped, server.log_path
    )


# ---- memory across loads ----------------------------------------------------------------------------------------


@dataclass
class MemoryResult:
    """RSS (MiB) before the first cycle and after each; seconds of each load call that added or removed a version."""

    rss_mib: list[float]
    add_s: list[float]
    remove_s: list[float]

    @property
    def change(self) -> float:
        """RSS after the last cycle over RSS before the first, minus 1 (0.05: 5% more)."""
        return self.rss_mib[-1] / self.rss_mib[0] - 1


def memory_cycle(workdir: Path, cycles: int = 20) -> MemoryResult:
    """Policy `all`: `cycles` times, version 2 added and loaded (and asked once), removed and loaded; RSS each time."""
    workdir.mkdir(parents=True, exist_ok=True)
    files = Repository(workdir / "models", policy={"all": {}})
    env = service_env(files.root, MNIST_MODEL_CONTROL="explicit")
    with Server.for_service(env, name="rollout-memory").running(workdir) as server:
        control = Control(server)
        control.ask(MODEL)  # NOTE: what every request allocates once is in the first figure, not the growth
        result = MemoryResult([server.rss_mib()], [], [])
        for cycle in range(cycles):
            files.add("2")
            result.add_s.append(control.load(MODEL, loaded=["2"], serving=["2", "1"]))
            if (answer := control.ask(MODEL, "2")) != (200, f"{MODEL} 2"):
                raise RolloutError(f"cycle {cycle + 1}: /predict?model={MODEL}&version=2 answered {answer}")
            files.remove("2")
            result.remove_s.append(control.load(MODEL, unloaded=["2"], serving=["1"]))
            result.rss_mib.append(server.rss_mib())
    return result


# ---- the report --------------------------------------------------------------------------------------------------


def _by_identity(answers: list[Answer], kind: str) -> str:
    """Each identity's count of the kind's answers, as "2 (e537be668baa): 812", in the order they first answered."""
    counts = Counter((a.version, (a.sha256 or "")[:12]) for a in answers if a.kind == kind and not a.failed)
    return ", ".join(f"{v} ({sha}): {n}" if sha else f"{v}: {n}" for (v, sha), n in counts.items())


def scenario_table(results: list[ScenarioResult], clients: int) -> list[str]:
    lines = [
        f"| mechanism | seconds of load ({clients} clients) | answered | failed | from a version not being served "
        "| /predict answers by version (sha256) | V2 answers by version | req/s | longest request |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: |",
    ]
    for result in results:
        seconds = result.stopped - result.started
        longest = max(answer.received - answer.sent for answer in result.answers)
        lines.append(
            f"| {result.mechanism} | {seconds:.1f} | {len(result.answers) - len(result.failures)} "
            f"| {len(result.failures)} | {len(result.violations)} | {_by_identity(result.answers, 'predict')} "
            f"| {_by_identity(result.answers, 'v2')} | {len(result.answers) / seconds:.0f} | {longest * 1000:.0f} ms |"
        )
    return lines


def steps_table(results: list[ScenarioResult]) -> list[str]:
    lines = [
        "| step | " + " | ".join(result.mechanism for result in results) + " |",
        "| --- |" + " ---: |" * len(results),
    ]
    for name in _step_names(results):
        cells = [f"{step.seconds:.2f} s" if (step := result.step(name)) else "-" for result in results]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _step_names(results: list[ScenarioResult]) -> list[str]:
    # Every run's steps in plan order: a step one run lacks goes after the step it follows in another.
    names: list[str] = []
    for result in results:
        at = 0
        for step in result.steps[1:]:
            if step.name not in names:
                names.insert(at, step.name)
            at = names.index(step.name) + 1
    return names


def memory_table(memory: MemoryResult) -> list[str]:
    def spread(seconds: list[float]) -> str:
        return f"{statistics.median(seconds):.2f} / {max(seconds):.2f} s"

    rss = memory.rss_mib
    return [
        "| cycles | RSS before | RSS after the last | highest after a cycle | change "
        "| load call adding version 2 (median / max) | load call removing it (median / max) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {len(rss) - 1} | {rss[0]:.1f} MiB | {rss[-1]:.1f} MiB | {max(rss[1:]):.1f} MiB | {memory.change:+.1%} "
        f"| {spread(memory.add_s)} | {spread(memory.remove_s)} |",
    ]


def markdown(results: list[ScenarioResult], memory: MemoryResult, clients: int) -> str:
    """The tables docs/models.md quotes, each with what it measures."""
    probes = "; ".join(
        f"{result.mechanism}: {result.probes[UNLOAD_OTHER][0]} once unloaded, "
        f"{' '.join(map(str, result.probes[RELOAD_OTHER]))} once loaded again"
        for result in results
    )
    return "\n".join(
        [
            f"Under load: {clients // 2} clients POST /predict (bench/digit.png as form field `file`, default model) "
            f"and {clients // 2} POST /v2/models/{MODEL}/infer (UINT8 [1, 784]), each on one keep-alive connection, "
            f"while the steps below change what {MODEL} serves, spread over the run (each state answers at least "
            f"{TRAFFIC} of each kind before the next step). Failed: any status but 200, or no answer (connection "
            f"error, {REQUEST_TIMEOUT:g} s timeout). From a version not being served: an answer whose version (and, "
            "from /predict, sha256) no state had while it was in flight, a step's state counting from the step's "
            "start until the next step is confirmed. Versions 2 and 4 are byte copies of version 1 (same sha256) "
            "under their own number; replacing 2 in place gives it other bytes (its graph's doc_string).",
            "",
            *scenario_table(results, clients),
            "",
            "Seconds from each step's change to its new state (endpoint: the control call's round trip; SIGHUP: "
            f"signal to the state in POST /v2/repository/index; poll, MNIST_REPOSITORY_POLL_S={POLL_S:g}: file "
            "change to the state in the index). The broken 3 and the half-copied 4 are never served: the index "
            "lists them UNAVAILABLE with a reason while the version before keeps serving.",
            "",
            *steps_table(results),
            "",
            f"The load asks {MODEL} only; its failures above include any while {OTHER} was unloaded and loaded "
            f"again. /predict?model={OTHER} answered {probes}.",
            "",
            f"Memory: {len(memory.rss_mib) - 1} cycles with version_policy `all`, each adding version 2 of {MODEL} "
            "(POST .../load), asking it once, removing its folder (POST .../load); RSS of the server process.",
            "",
            *memory_table(memory),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rollout",
        description="Model rollouts under load through the control endpoints, SIGHUP and polling; memory "
        "across load/unload cycles. Markdown on stdout, progress on stderr.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of load per mechanism")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients, half /predict, half V2")
    parser.add_argument("--cycles", type=int, default=20, help="load/unload cycles of the memory run")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rollout-") as tmp:
        results = [run_scenario(name, Path(tmp) / name, args.seconds, args.clients) for name in MECHANISMS]
        log(f"memory: {args.cycles} load/unload cycles")
        memory = memory_cycle(Path(tmp) / "memory", args.cycles)
    print(markdown(results, memory, args.clients))


if __name__ == "__main__":
    main()
