"""A scenario of bench/rollout.py: steps, each confirmed, timed and kept, while the load runs."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from bench.rollout_control import Control, RolloutError, ready, refused, wait_until
from bench.rollout_files import MODEL, OTHER, Identity, Repository
from bench.rollout_load import Answer, Load, Step, outside_timeline
from bench.servers import Server, service_env

MECHANISMS = ("endpoint", "SIGHUP", "poll")
POLL_S = 0.5  # MNIST_REPOSITORY_POLL_S of the poll run
TRAFFIC = 20  # answers of each kind every state gives before the next step: it takes traffic
# The steps the tests look up by name (see plan)
BROKEN = "drop in a broken version 3"
HALF_COPIED = "half-copied version 4: model.onnx, no card"
CARD_ARRIVES = "version 4's card.json arrives"
UNLOAD_OTHER, RELOAD_OTHER = f"unload {OTHER}", f"load {OTHER} again"


def log(message: str) -> None:
    print(f"[rollout {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


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
