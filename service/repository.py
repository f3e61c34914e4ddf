"""The model repository: `<root>/<name>/<version>/model.onnx` + `card.json`, each model served by name.

As in Triton, a version is a folder named by a positive integer. Every model found is loaded, verified
(sha256 against its card, the card's contract against the graph, a test run) and served at its newest
version; a request without a model goes to the default model. One object owns what is served: requests
resolve a name (and version) to a ServedModel and keep that reference for as long as they need it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.contract import Contract
from service.errors import ModelLoadError, NotFound
from service.inference import InferenceEngine, Predictor
from service.runtime import ModelRuntime

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
CARD_FILE = "card.json"
READY, UNAVAILABLE = "READY", "UNAVAILABLE"  # Triton's names for a version's state


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


def scan(root: Path) -> dict[str, list[VersionFolder]]:
    """Every model folder under root with its version folders, oldest version first; ModelLoadError if none."""
    if not root.is_dir():
        raise ModelLoadError(
            f"model repository {root} not found: export a model into it "
            "(python -m training export) or set MNIST_MODEL_REPOSITORY"
        )
    found: dict[str, list[VersionFolder]] = {}
    for model_dir in sorted(root.iterdir()):
        if not model_dir.is_dir() or model_dir.name.startswith("."):
            continue
        versions = [
            VersionFolder(model_dir.name, path.name, path)
            for path in model_dir.iterdir()
            if path.is_dir() and path.name.isdigit() and int(path.name) > 0
        ]
        if versions:
            found[model_dir.name] = sorted(versions, key=lambda folder: int(folder.version))
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


def verify(root: Path, default_model: str) -> None:
    """Load and check the newest version of every model once (ModelLoadError for the first that fails)."""
    for versions in scan_with_default(root, default_model).values():
        load_runtime(versions[-1])


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
    """One loaded model version: its runtime (session, card, contract), its micro-batcher and the predictor."""

    def __init__(self, runtime: ModelRuntime, engine: InferenceEngine, predictor: Predictor) -> None:
        self.runtime, self.engine, self.predictor = runtime, engine, predictor
        self.name, self.version = runtime.name, runtime.version
        self.identity = predictor.model  # {name, version, sha256}: what every answer names

    @property
    def contract(self) -> Contract:
        return self.runtime.contract

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
        }


# Builds the batching engine and predictor around a verified runtime (the app wires in settings and metrics).
EngineFactory = Callable[[ModelRuntime], ServedModel]


class ModelRepository:
    """The models served, by name and version; `async with` starts and drains every model's micro-batcher."""

    def __init__(self, root: Path, default_model: str, served: dict[str, dict[str, ServedModel]], found: dict) -> None:
        self.root = root
        self.default_model = default_model
        self._served = served  # name -> version -> model; NOTE: replaced whole, never mutated in place
        self._found: dict[str, list[VersionFolder]] = found
        self._stack = AsyncExitStack()

    @classmethod
    def load(
        cls, root: Path, default_model: str, build: EngineFactory, *, intra_op_threads: int = 1
    ) -> ModelRepository:
        """Scan root and load the newest version of every model; ModelLoadError (one line) for the first failure."""
        found = scan_with_default(root, default_model)
        served: dict[str, dict[str, ServedModel]] = {}
        for name, versions in found.items():
            newest = versions[-1]
            model = build(load_runtime(newest, intra_op_threads=intra_op_threads))
            served[name] = {newest.version: model}
        return cls(root, default_model, served, found)

    async def __aenter__(self) -> ModelRepository:
        for versions in self._served.values():
            for model in versions.values():
                await self._stack.enter_async_context(model.engine)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

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

    def resolve(self, name: str | None = None, version: str | None = None) -> ServedModel:
        """The model version a request asks for: the default model without a name, the newest without a version.

        NotFound (404) naming what is served, for an unknown model or a version that is not served.
        """
        name = self.default_model if name is None else name
        versions = self._served.get(name)
        if versions is None:
            raise NotFound(f"unknown model {_short(name)}: this server serves {', '.join(self.names)}")
        if version is None:
            return versions[self.versions(name)[0]]
        model = versions.get(version)
        if model is None:
            raise NotFound(
                f"unknown version {_short(version)} of model '{name}': this server has version "
                f"{', '.join(self.versions(name))} of it"
            )
        return model

    def index(self) -> list[dict[str, str]]:
        """Every version found in the repository with its state (Triton's repository index)."""
        entries = []
        for name in sorted(self._found):
            for folder in self._found[name]:
                if folder.version in self._served.get(name, {}):
                    entries.append({"name": name, "version": folder.version, "state": READY, "reason": ""})
                else:
                    reason = "not served: only the newest version of each model is served"
                    entries.append({"name": name, "version": folder.version, "state": UNAVAILABLE, "reason": reason})
        return entries


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")
