"""Which versions of a model to serve: `<name>/config.json` holds a version policy, with Triton's names.

{"version_policy": {"latest": {"num_versions": 1}}}   the newest n versions (the default, n = 1)
{"version_policy": {"all": {}}}                       every version found
{"version_policy": {"specific": {"versions": [1, 3]}}} these versions (those of them that are found)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from service.errors import ModelLoadError

CONFIG_FILE = "config.json"
EXAMPLE = '{"version_policy": {"latest": {"num_versions": 1}}} (or {"all": {}}, or {"specific": {"versions": [1, 3]}})'


@dataclass(frozen=True, slots=True)
class VersionPolicy:
    """One of latest (num_versions), all, or specific (versions)."""

    kind: str  # "latest", "all" or "specific"
    num_versions: int = 1
    versions: tuple[str, ...] = ()

    def select(self, found: Sequence[str]) -> list[str]:
        """The versions to serve, newest first, out of the versions found."""
        newest_first = sorted(found, key=int, reverse=True)
        if self.kind == "latest":
            return newest_first[: self.num_versions]
        if self.kind == "specific":
            return [version for version in newest_first if version in self.versions]
        return newest_first

    def describe(self) -> str:
        if self.kind == "latest":
            return f"latest {self.num_versions}"
        if self.kind == "specific":
            return f"specific versions {', '.join(self.versions)}"
        return "all"


DEFAULT_POLICY = VersionPolicy("latest", num_versions=1)


def read_policy(model_dir: Path) -> VersionPolicy:
    """The policy in model_dir/config.json (the default without one); ModelLoadError saying what is wrong."""
    path = model_dir / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        return DEFAULT_POLICY
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"model config {path} is not readable JSON: {err}") from None
    policy = config.get("version_policy") if isinstance(config, dict) else None
    if policy is None:
        return DEFAULT_POLICY
    return _parse(policy, path)


def _parse(policy: object, path: Path) -> VersionPolicy:
    bad = ModelLoadError(f"model config {path} has a version_policy this server does not understand: write {EXAMPLE}")
    if not isinstance(policy, dict) or len(policy) != 1:
        raise bad
    ((kind, body),) = policy.items()
    if not isinstance(body, dict):
        raise bad
    if kind == "all":
        return VersionPolicy("all")
    if kind == "latest":
        count = body.get("num_versions", 1)
        if type(count) is not int or count < 1:
            raise bad
        return VersionPolicy("latest", num_versions=count)
    if kind == "specific":
        versions = body.get("versions")
        if not isinstance(versions, list) or not versions or any(type(v) is not int or v < 1 for v in versions):
            raise bad
        return VersionPolicy("specific", versions=tuple(str(version) for version in sorted(set(versions))))
    raise bad
