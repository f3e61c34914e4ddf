"""The load of bench/rollout.py, and the check of its answers against the timeline of steps.

`clients` threads ask MODEL (half POST /predict, half V2 infer); every Answer names the version that computed
it. outside_timeline finds the answers whose identity no state had while they were in flight.
"""

from __future__ import annotations

import http.client
import json
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from bench.load import DIGIT_PNG, multipart
from bench.rollout_files import MODEL, Identity

REQUEST_TIMEOUT = 30.0  # seconds a request of the load may take before it counts as failed


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


# ---- the timeline the answers are checked against ----------------------------------------------------------


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


def outside_timeline(answers: list[Answer], steps: list[Step]) -> list[Answer]:
    """The answers (not failed) whose identity no state had while they were in flight (see bench/rollout.py's doc)."""
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
