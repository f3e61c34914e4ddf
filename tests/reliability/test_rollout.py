"""Model control under load, on real servers: bench/rollout.py's runs, asserted.

Each mechanism (the control endpoints and SIGHUP with MNIST_MODEL_CONTROL=explicit, polling with poll and
MNIST_REPOSITORY_POLL_S=0.5) gets a fresh server on a copy of the committed models and 30 s of 32 clients (half
/predict, half V2 infer) while it adds, replaces, breaks, half-copies and removes versions of mnist_cnn and
unloads and reloads mnist_modern. The run waits on states (the repository index, polled), never on the clock;
bench/rollout.py's doc says when an answer counts as coming from a version being served.

About 110 s in all on 2 cores: three 30 s runs and 20 load/unload cycles.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.rollout import memory_cycle
from bench.rollout_control import UNAVAILABLE, entry
from bench.rollout_files import MODEL, OTHER
from bench.rollout_load import Answer, Step, outside_timeline
from bench.rollout_scenario import (
    BROKEN,
    CARD_ARRIVES,
    HALF_COPIED,
    MECHANISMS,
    RELOAD_OTHER,
    UNLOAD_OTHER,
    ScenarioResult,
    run_scenario,
)
from tests.paths import committed_repository

SECONDS, CLIENTS, CYCLES = 30.0, 32, 20


@pytest.fixture(scope="module", params=MECHANISMS)
def rollout(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> ScenarioResult:
    """One mechanism's run under load (once per module: every test of that mechanism reads it)."""
    committed_repository()
    mechanism = request.param
    return run_scenario(mechanism, tmp_path_factory.mktemp(mechanism), SECONDS, CLIENTS)


def step(rollout: ScenarioResult, name: str) -> Step:
    found = rollout.step(name)
    assert found is not None, f"the {rollout.mechanism} run has no step {name!r}"
    return found


def test_rollout_under_load_fails_no_request(rollout: ScenarioResult) -> None:
    assert not rollout.failures, f"failed: {rollout.examples(rollout.failures)}\nsteps:\n{rollout.timeline()}"


def test_rollout_under_load_answers_only_from_versions_being_served(rollout: ScenarioResult) -> None:
    examples = rollout.examples(rollout.violations)
    assert not rollout.violations, f"answered by a version not being served: {examples}\nsteps:\n{rollout.timeline()}"


def test_rollout_keeps_the_load_running_30_s(rollout: ScenarioResult) -> None:
    assert rollout.stopped - rollout.started >= SECONDS
    assert {answer.kind for answer in rollout.answers} == {"predict", "v2"}


def test_broken_version_is_listed_unavailable_with_its_sha256_mismatch(rollout: ScenarioResult) -> None:
    listed = entry(step(rollout, BROKEN).index, MODEL, "3")
    assert listed is not None and listed["state"] == UNAVAILABLE, listed
    assert "sha256" in listed["reason"] and "refused" in listed["reason"], listed


@pytest.mark.parametrize("rollout", ["SIGHUP", "poll"], indirect=True)
def test_half_copied_version_is_not_answered_before_its_card_arrives(rollout: ScenarioResult) -> None:
    half = entry(step(rollout, HALF_COPIED).index, MODEL, "4")
    assert half is not None and half["state"] == UNAVAILABLE and half["reason"], half
    card_at = step(rollout, CARD_ARRIVES).started
    early = [answer for answer in rollout.answers if answer.version == "4" and answer.received < card_at]
    assert not early, f"answered by version 4 before its card: {rollout.examples(early)}"


def test_unloaded_model_answers_again_once_loaded(rollout: ScenarioResult) -> None:
    assert rollout.probes[UNLOAD_OTHER][0] != 200, rollout.probes  # not served while unloaded ...
    assert rollout.probes[RELOAD_OTHER] == (200, f"{OTHER} 1"), rollout.probes  # ... and served again


def test_loading_and_unloading_a_version_20_times_keeps_rss_within_10_percent(tmp_path: Path) -> None:
    committed_repository()
    memory = memory_cycle(tmp_path, CYCLES)
    figures = ", ".join(f"{rss:.1f}" for rss in memory.rss_mib)
    assert abs(memory.change) <= 0.10, f"RSS before the first cycle, then after each (MiB): {figures}"


# ---- the timeline check itself, on answers made up for it -----------------------------------------------------


def timeline(*changes: tuple[float, float, str]) -> list[Step]:
    """A start serving version 1, then each (started, confirmed, version) serving that version (sha "s<v>")."""
    start = Step("start", 0.0, 1.0, frozenset({("1", "s1")}), [])
    return [start] + [Step(v, a, b, frozenset({(v, f"s{v}")}), []) for a, b, v in changes]


def test_timeline_check_accepts_an_answer_in_flight_across_a_swap() -> None:
    steps = timeline((10.0, 12.0, "2"))
    answers = [
        Answer("predict", 11.5, 12.5, 200, "1", "s1"),  # sent before version 2 was confirmed
        Answer("predict", 9.0, 10.5, 200, "2", "s2"),  # answered after version 2's step began
        Answer("v2", 20.0, 20.1, 200, "2"),  # V2 names the version only
    ]
    assert outside_timeline(answers, steps) == []


def test_timeline_check_flags_an_answer_from_a_version_after_it_left() -> None:
    steps = timeline((10.0, 12.0, "2"))
    late = Answer("predict", 12.5, 12.6, 200, "1", "s1")  # sent once only version 2 served
    early = Answer("v2", 5.0, 9.0, 200, "2")  # back before version 2's step began
    other_bytes = Answer("predict", 20.0, 20.1, 200, "2", "s1")  # version 2, but not its sha256
    assert outside_timeline([late, early, other_bytes], steps) == [late, early, other_bytes]
