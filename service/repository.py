"""The model repository: `<root>/<name>/<version>/model.onnx` + `card.json`, each model served by name.

As in Triton, a version is a folder named by a positive integer and `<name>/config.json` may set a version
policy (service/policy.py; default: the newest version). This module reads the folders and owns what is
served; service/control.py decides what to load and unload. Requests resolve a name (and version) to a
ServedModel and hold it (`with model:`) while they use it, so a version being replaced finishes them first.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.contract import Contract
from service.errors import ModelLoadError, NotFound
from service.explain import Explainer, plan_gradcam
from service.inference import InferenceEngine, Predictor
from service.policy import DEFAULT_POLICY, VersionPolicy
from service.runtime import ModelRuntime

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
CARD_FILE = "card.json"
READY, LOADING, UNAVAILABLE = "READY", "LOADING", "UNAVAILABLE"  # Triton's names for a version's state

# What a version's files looked like when read: (size, mtime_ns, inode) of each, None where missing. A
# version whose files changed since it was loaded is loaded again; a refused one is retried only then.
Signature = tuple[tuple[int, int, int] | None, ...]


def file_signature(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns, stat.st_ino


@dataclass(frozen=True, slots=True)
class VersionFolder:
    """One `<root>/<name>/<version>/` folder found in the repository."""

    name: str
    version: str
    path: Path

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def card_path(self) -> Path:
        return self.path / CARD_FILE

    def signature(self) -> Signature:
        return file_signature(self.model_path), file_signature(self.card_path)


def _check_root(root: Path) -> None:
    if not root.is_dir():
        raise ModelLoadError(
            f"model repository {root} not found: export a model into it "
            "(python -m training export) or set MNIST_MODEL_REPOSITORY"
        )


def scan_model(model_dir: Path) -> list[VersionFolder]:
    """The version folders of one model folder, oldest first (none if the folder is gone)."""
    try:
        paths = list(model_dir.iterdir())
    except OSError:
        return []
    versions = [
        VersionFolder(model_dir.name, path.name, path)
        for path in paths
        if path.name.isdigit() and int(path.name) > 0 and path.is_dir()
    ]
    return sorted(versions, key=lambda folder: int(folder.version))


def scan(root: Path) -> dict[str, list[VersionFolder]]:
    """Every model folder under root with its version folders, oldest version first; ModelLoadError if none.

    Hidden folders (`.name`) are skipped: copy a model or version in under a hidden name, then rename it.
    """
    _check_root(root)
    found: dict[str, list[VersionFolder]] = {}
    for model_dir in sorted(root.iterdir()):
        if model_dir.name.startswith(".") or not model_dir.is_dir():
            continue
        if versions := scan_model(model_dir):
            found[model_dir.name] = versions
    if not found:
        raise ModelLoadError(
            f"no models in repository {root}: each model is a folder <name>/<version>/ holding "
            f"{MODEL_FILE} and {CARD_FILE} (python -m training export writes them)"
        )
    return found


def scan_with_default(root: Path, default_model: str) -> dict[str, list[VersionFolder]]:
    """scan(root), and ModelLoadError unless the default model is among the models found."""
    found = scan(root)
    if default_model not in found:
        raise ModelLoadError(
            f"the default model '{default_model}' is not in repository {root} (it has {', '.join(found)}): "
            "set MNIST_DEFAULT_MODEL to one of them"
        )
    return found


def load_runtime(folder: VersionFolder, *, intra_op_threads: int = 1) -> ModelRuntime:
    """Load and verify one version; its card must name the folder's model and version."""
    runtime = ModelRuntime.load(folder.model_path, folder.card_path, intra_op_threads=intra_op_threads)
    if (runtime.name, runtime.version) != (folder.name, folder.version):
        raise ModelLoadError(
            f"model card {folder.card_path} says model '{runtime.name}' version '{runtime.version}', but it lies "
            f"in {folder.name}/{folder.version}/: re-export it there, or move it to {runtime.name}/{runtime.version}/"
        )
    return runtime


class ServedModel:
    """One loaded model version: its runtime (session, card, contract), its micro-batcher and the predictor.

    `with model:` marks a request that uses it; once retired (no longer resolvable), `drained()` returns
    when the last of them is done.
    """

    def __init__(self, runtime: ModelRuntime, engine: InferenceEngine, predictor: Predictor) -> None:
        self.runtime, self.engine, self.predictor = runtime, engine, predictor
        graph = runtime.graph
        gradcam = plan_gradcam(runtime.contract, graph) if graph else "the model's graph could not be read"
        self.explainer = Explainer(predictor, gradcam)
        self.name, self.version = runtime.name, runtime.version
        self.identity = predictor.model  # {name, version, sha256}: what every answer names
        self.signature: Signature = ()  # of the files it was loaded from (set by whoever loads it)
        self.holders = 0  # requests using it now
        self._idle: asyncio.Event | None = None

    @property
    def contract(self) -> Contract:
        return self.runtime.contract

    def __enter__(self) -> ServedModel:
        self.holders += 1
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.holders -= 1
        if not self.holders and self._idle is not None:
            self._idle.set()

    async def drained(self) -> None:
        """Return once no request uses this version (call after it stopped being resolvable)."""
        if self.holders:
            self._idle = asyncio.Event()
            await self._idle.wait()

    def summary(self) -> dict[str, Any]:
        """What /models lists for this version."""
        card = self.runtime.card
        metrics = card.get("metrics", {})
        return {
            **self.identity,
            "architecture": card.get("architecture"),
            "parameters": card.get("parameters"),
            "test_accuracy": metrics.get("test_accuracy"),
            "outputs": [spec.describe() for spec in self.runtime.contract.outputs],
            "explanations": self.explainer.methods,
        }


# Builds, warms and returns the served model around a verified runtime (the app wires in settings and metrics).
EngineFactory = Callable[[ModelRuntime], ServedModel]


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """What the repository knows of one model folder: its versions found, its policy, and versions' states."""

    versions: tuple[VersionFolder, ...] = ()
    policy: VersionPolicy | None = None  # None: its config.json is unreadable (the reason is in states)
    states: tuple[tuple[str, str, str], ...] = ()  # (version, state, reason) of versions not simply READY
    unloaded: bool = False  # unloaded by request: stays so until a load request


class ModelRepository:
    """The models served, by name and version, and what is known of every model folder (for the index).

    NOTE: both maps are replaced whole, never mutated in place, so a request reads one consistent view.
    """

    def __init__(self, root: Path, default_model: str) -> None:
        self.root = root
        self.default_model = default_model
        self._served: dict[str, dict[str, ServedModel]] = {}  # name -> version -> model
        self._entries: dict[str, ModelEntry] = {}

    @property
    def names(self) -> list[str]:
        """The models served, sorted by name."""
        return sorted(self._served)

    def models(self) -> list[ServedModel]:
        """Every version served, by name, then newest version first."""
        return [self._served[name][version] for name in self.names for version in self.versions(name)]

    def versions(self, name: str) -> list[str]:
        """The versions of a model that are served, newest first."""
        return sorted(self._served.get(name, {}), key=int, reverse=True)

    def served(self, name: str) -> dict[str, ServedModel]:
        """The versions of a model served now, by version (a copy)."""
        return dict(self._served.get(name, {}))

    def entry(self, name: str) -> ModelEntry:
        return self._entries.get(name, ModelEntry())

    @property
    def known(self) -> list[str]:
        """Every model found in the repository or served, sorted."""
        return sorted(self._entries.keys() | self._served.keys())

    @property
    def ready(self) -> bool:
        """Whether requests without ?model= can be answered: the default model has a version serving."""
        return bool(self._served.get(self.default_model))

    def publish(self, name: str, versions: dict[str, ServedModel], entry: ModelEntry | None) -> None:
        """Serve exactly these versions of a model from now on (none: stop serving it); entry None forgets it."""
        served = {key: value for key, value in self._served.items() if key != name}
        if versions:
            served[name] = dict(versions)
        entries = {key: value for key, value in self._entries.items() if key != name}
        if entry is not None:
            entries[name] = entry
        self._served, self._entries = served, entries

    def resolve(self, name: str | None = None, version: str | None = None) -> ServedModel:
        """The model version a request asks for: the default model without a name, the newest without a version.

        NotFound (404) naming what is served, for an unknown model or a version that is not served.
        """
        name = self.default_model if name is None else name
        versions = self._served.get(name)
        if versions is None:
            if name in self._entries:
                raise NotFound(f"model '{name}' is not serving now: {self.why_not(name)}")
            raise NotFound(f"unknown model {_short(name)}: this server serves {', '.join(self.names) or 'nothing'}")
        if version is None:
            return versions[max(versions, key=int)]
        model = versions.get(version)
        if model is None:
            raise NotFound(
                f"unknown version {_short(version)} of model '{name}': this server has version "
                f"{', '.join(self.versions(name))} of it"
            )
        return model

    def is_ready(self, name: str, version: str | None = None) -> bool:
        """Whether the model (that version) serves; NotFound if the repository does not know it at all."""
        versions = self._served.get(name, {})
        if version is None:
            if versions or name in self._entries:
                return bool(versions)
        elif version in versions or any(row["version"] == version for row in self.index(name)):
            return version in versions
        raise NotFound(f"unknown model {_short(name)}" + (f" version {_short(version)}" if version else ""))

    def why_not(self, name: str) -> str:
        """Why a model serves no version, from its index rows."""
        rows = [row for row in self.index(name) if row["reason"]]
        return rows[-1]["reason"] if rows else "no version of it is loaded"

    def index(self, only: str | None = None) -> list[dict[str, str]]:
        """Every model version found or served, with its state and, when not READY, why (Triton's index)."""
        rows = []
        for name in [only] if only else self.known:
            entry, served = self.entry(name), self._served.get(name, {})
            states = {version: (state, reason) for version, state, reason in entry.states}
            versions = {folder.version for folder in entry.versions} | served.keys() | states.keys()
            for version in sorted(versions, key=int):
                state, reason = states.get(version, (READY, ""))
                if version in served:
                    state = READY
                elif state == READY:
                    state, reason = UNAVAILABLE, _idle_reason(name, entry)
                rows.append({"name": name, "version": version, "state": state, "reason": reason})
        return rows


def _idle_reason(name: str, entry: ModelEntry) -> str:
    if entry.unloaded:
        return f"unloaded by request: POST /v2/repository/models/{name}/load serves it again"
    if entry.policy is None:
        return f"not served: {name}/config.json is unreadable"
    if entry.policy is DEFAULT_POLICY:
        return f"not selected by the version policy (latest 1, the default): {name}/config.json can set another"
    return f"not selected by the version policy ({entry.policy.describe()}) of {name}/config.json"


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")
