"""Version policies from <name>/config.json, with Triton's names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.errors import ModelLoadError
from service.policy import DEFAULT_POLICY, read_policy

FOUND = ["1", "2", "3", "10"]


def policy_of(tmp_path: Path, config: object) -> list[str]:
    (tmp_path / "config.json").write_text(json.dumps(config))
    return read_policy(tmp_path).select(FOUND)


def test_read_policy_without_config_is_the_newest_version(tmp_path: Path) -> None:
    assert read_policy(tmp_path) == DEFAULT_POLICY
    assert DEFAULT_POLICY.select(FOUND) == ["10"]  # versions are numbers: 10 is newer than 3


def test_read_policy_latest_keeps_the_newest_n(tmp_path: Path) -> None:
    assert policy_of(tmp_path, {"version_policy": {"latest": {"num_versions": 2}}}) == ["10", "3"]


def test_read_policy_all_keeps_every_version(tmp_path: Path) -> None:
    assert policy_of(tmp_path, {"version_policy": {"all": {}}}) == ["10", "3", "2", "1"]


def test_read_policy_specific_keeps_those_found(tmp_path: Path) -> None:
    assert policy_of(tmp_path, {"version_policy": {"specific": {"versions": [3, 1, 7]}}}) == ["3", "1"]


def test_read_policy_without_version_policy_is_the_default(tmp_path: Path) -> None:
    assert policy_of(tmp_path, {"max_batch_size": 8}) == ["10"]


@pytest.mark.parametrize(
    "policy",
    [
        {"latest": {"num_versions": 0}},
        {"latest": {"num_versions": "2"}},
        {"specific": {"versions": []}},
        {"specific": {"versions": ["1"]}},
        {"newest": {}},
        {"all": {}, "latest": {}},
        "all",
    ],
)
def test_read_policy_refuses_what_it_does_not_understand(tmp_path: Path, policy: object) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"version_policy": policy}))
    with pytest.raises(ModelLoadError, match="version_policy this server does not understand"):
        read_policy(tmp_path)


def test_read_policy_refuses_a_config_that_is_not_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{version_policy: all")
    with pytest.raises(ModelLoadError, match="not readable JSON"):
        read_policy(tmp_path)
