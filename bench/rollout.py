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

The parts: bench/rollout_load.py (the load, and the timeline check above), bench/rollout_files.py (the copy of
the models and its changes), bench/rollout_control.py (control calls and the index, as a client sees them),
bench/rollout_scenario.py (the steps of each mechanism's run); here the memory run, the tables and the CLI.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.rollout_control import Control, RolloutError
from bench.rollout_files import MODEL, OTHER, Repository
from bench.rollout_load import REQUEST_TIMEOUT, Answer
from bench.rollout_scenario import (
    MECHANISMS,
    POLL_S,
    RELOAD_OTHER,
    TRAFFIC,
    UNLOAD_OTHER,
    ScenarioResult,
    log,
    run_scenario,
)
from bench.servers import Server, service_env

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
