"""Model control: load, replace and unload model versions while serving (Triton's model-repository extension).

A new version is loaded and verified exactly as at start-up (sha256, contract, a test run), warmed up and
started; only then does it take traffic, in one swap of the served map. The versions it replaces stop taking
new requests at that swap, finish the ones they hold, and are then stopped and released. One change at a time.
Triggers: the control endpoints, SIGHUP and, with MNIST_MODEL_CONTROL=poll, a timer (service/watch.py).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio.to_thread

from service.errors import ModelLoadError, ModelRefused, NotFound
from service.policy import CONFIG_FILE, VersionPolicy, read_policy
from service.repository import (
    LOADING,
    READY,
    UNAVAILABLE,
    EngineFactory,
    ModelEntry,
    ModelRepository,
    ServedModel,
    Signature,
    VersionFolder,
    file_signature,
    load_runtime,
    scan,
    scan_model,
    scan_with_default,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ControlObservers:
    """What the metrics record of each change (see service/metrics.py)."""

    loaded: Callable[[str, str, float], None]  # model, outcome ("success" or "failure"), seconds
    unloaded: Callable[[str, str], None]  # model, outcome
    forget: Callable[[ServedModel], None]  # its per-version series (model info) are dropped


@dataclass(slots=True)
class Change:
    """What one load (or re-read) of a model did."""

    name: str
    loaded: list[str] = field(default_factory=list)
    unloaded: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # version -> reason, tried this time
    skipped: dict[str, str] = field(default_factory=dict)  # refused before, files unchanged: not tried again
    serving: list[str] = field(default_factory=list)  # newest first, afterwards

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "loaded": self.loaded, "unloaded": self.unloaded, "serving": self.serving}

    def __bool__(self) -> bool:
        return bool(self.loaded or self.unloaded or self.refused)


class ModelControl:
    """Applies the repository's folders and policies to what is served; owns the lock that orders changes."""

    def __init__(
        self, repository: ModelRepository, build: EngineFactory, observers: ControlObservers, intra_op_threads: int
    ) -> None:
        self.repository = repository
        self._build = build
        self._observers = observers
        self._threads = intra_op_threads
        self._lock = asyncio.Lock()
        self._refused: dict[tuple[str, str], tuple[object, str]] = {}  # (name, version) -> (signature, reason)

    # ---- start-up and shutdown ----------------------------------------------------------------------

    async def start(self) -> None:
        """Load every model's selected versions; ModelLoadError (one line) for the first that fails."""
        pin_mmap_threshold()
        root = self.repository.root
        found = await anyio.to_thread.run_sync(scan_with_default, root, self.repository.default_model)
        async with self._lock:
            for name, folders in found.items():
                change = await self._apply(name, folders, retry=True)
                if change.refused:
                    break
            else:
                return
        await self.close()
        raise ModelLoadError(next(iter(change.refused.values())))

    async def close(self) -> None:
        """Stop every version (each finishes what is queued first)."""
        async with self._lock:
            for name in self.repository.known:
                for model in self.repository.served(name).values():
                    await model.engine.__aexit__(None, None, None)
                self.repository.publish(name, {}, None)

    # ---- the changes ----------------------------------------------------------------------------------

    async def load(self, name: str) -> Change:
        """Re-read one model's folder and apply its policy (an unloaded model is served again).

        NotFound if the repository has no such folder and serves no such model; ModelRefused if a version
        the policy selects was refused (whatever served before keeps serving).
        """
        model_dir = self.repository.root / name
        folders = await anyio.to_thread.run_sync(scan_model, model_dir) if not name.startswith(".") else []
        async with self._lock:
            if not folders and name not in self.repository.known:
                raise NotFound(
                    f"no model folder '{name}' in the repository {self.repository.root}: copy it in "
                    f"(<name>/<version>/model.onnx + card.json) first"
                )
            change = await self._apply(name, folders, retry=True)
        if change.unloaded:
            release_memory()
        if change.refused:
            raise ModelRefused(_refusal(change))
        return change

    async def unload(self, name: str) -> Change:
        """Stop serving a model (after its requests finish) until it is loaded again; NotFound if unknown."""
        async with self._lock:
            if name not in self.repository.known:
                raise NotFound(f"unknown model '{name}': this server knows {', '.join(self.repository.known)}")
            entry = self.repository.entry(name)
            old = self.repository.served(name)
            unloaded = ModelEntry(entry.versions, entry.policy, (), unloaded=True)
            self.repository.publish(name, {}, unloaded)
            change = Change(name, unloaded=sorted(old, key=int, reverse=True))
            await self._retire(list(old.values()), "unloaded by request")
            del old
        release_memory()
        return change

    async def reread(self, trigger: str) -> list[Change]:
        """Re-read the whole repository (SIGHUP, poll): new models load, removed ones unload, changed ones reload.

        Versions refused before are retried only when their files change. A model unloaded by request stays so.
        """
        try:
            found = await anyio.to_thread.run_sync(scan, self.repository.root)
        except ModelLoadError as err:
            log.warning("repository re-read (%s) skipped, keeping what is served: %s", trigger, err)
            return []
        changes = []
        async with self._lock:
            for name in sorted(found.keys() | set(self.repository.known)):
                if self.repository.entry(name).unloaded:
                    continue
                changes.append(await self._apply(name, found.get(name, []), retry=False))
        changes = [change for change in changes if change]
        if any(change.unloaded for change in changes):
            release_memory()
        if changes:
            log.info("repository re-read (%s): %s", trigger, "; ".join(_summary(change) for change in changes))
        return changes

    # ---- applying one model's folder ----------------------------------------------------------------------

    async def _apply(self, name: str, folders: list[VersionFolder], *, retry: bool) -> Change:
        # Under the lock. Load what the policy selects and is not served yet (or changed), swap, retire the rest.
        repository, change = self.repository, Change(name)
        current = repository.served(name)
        if not folders:  # the folder is gone (or empty): stop serving it
            repository.publish(name, {}, None)
            change.unloaded = sorted(current, key=int, reverse=True)
            await self._retire(list(current.values()), "its folder left the repository")
            return change
        try:
            policy = await anyio.to_thread.run_sync(read_policy, folders[0].path.parent)
        except ModelLoadError as err:
            return self._refuse_config(name, folders, current, change, self._reason(err), retry)
        chosen = await self._load_selected(name, folders, policy, current, change, retry)
        states = self._states(name, folders, current, chosen)
        repository.publish(name, chosen, ModelEntry(tuple(folders), policy, states))
        change.serving = sorted(chosen, key=int, reverse=True)
        replaced = [model for version, model in current.items() if chosen.get(version) is not model]
        change.unloaded = sorted({m.version for m in replaced} - set(change.loaded), key=int, reverse=True)
        found = {folder.version for folder in folders}
        for model in replaced:
            await self._retire([model], _why_retired(model.version, chosen, found))
        return change

    def _refuse_config(
        self,
        name: str,
        folders: list[VersionFolder],
        current: dict[str, ServedModel],
        change: Change,
        reason: str,
        retry: bool,
    ) -> Change:
        # An unreadable config.json: what serves keeps serving; reported once until the file changes.
        key, signature = (name, CONFIG_FILE), (file_signature(folders[0].path.parent / CONFIG_FILE),)
        unchanged = self._refused.get(key) == (signature, reason)
        self._refused[key] = (signature, reason)
        states = tuple((folder.version, UNAVAILABLE, f"refused: {reason}") for folder in folders)
        self.repository.publish(name, current, ModelEntry(tuple(folders), None, states))
        refusals = dict.fromkeys((folder.version for folder in folders), reason)
        if unchanged and not retry:
            change.skipped = refusals
            return change
        log.warning("model %s: %s; keeping what is served", name, reason)
        change.refused = refusals
        return change

    async def _load_selected(
        self,
        name: str,
        folders: list[VersionFolder],
        policy: VersionPolicy,
        current: dict[str, ServedModel],
        change: Change,
        retry: bool,
    ) -> dict[str, ServedModel]:
        # The policy applies to the versions that load: a refused new version leaves the next newest serving.
        by_version = {folder.version: folder for folder in folders}
        loaded: dict[str, ServedModel] = {}
        while True:
            refused = change.refused.keys() | change.skipped.keys()
            usable = [v for v in by_version if v not in refused or v in current]
            selected = policy.select(usable)
            pending = [v for v in selected if v not in loaded and v not in refused and _stale(v, current, by_version)]
            if not pending:
                break
            for version in pending:
                model = await self._load_one(by_version[version], change, retry)
                if model is not None:
                    loaded[version] = model
        return {v: loaded.get(v) or current[v] for v in selected if v in loaded or v in current}

    async def _load_one(self, folder: VersionFolder, change: Change, retry: bool) -> ServedModel | None:
        key, signature = (folder.name, folder.version), folder.signature()
        known = self._refused.get(key)
        if not retry and known is not None and known[0] == signature:
            change.skipped[folder.version] = known[1]  # unchanged since it was refused: not worth a retry
            return None
        self._mark_loading(folder)
        started = time.perf_counter()
        try:
            model = await anyio.to_thread.run_sync(self._build_version, folder, signature)
            await model.engine.__aenter__()
        except Exception as err:  # ModelLoadError, or anything a broken file provokes: never the server's end
            reason = self._reason(err)
            self._refused[key] = (signature, reason)
            change.refused[folder.version] = reason
            self._observers.loaded(folder.name, "failure", time.perf_counter() - started)
            log.warning("model %s version %s refused: %s", folder.name, folder.version, reason)
            return None
        seconds = time.perf_counter() - started
        self._refused.pop(key, None)
        model.signature = signature
        change.loaded.append(folder.version)
        self._observers.loaded(folder.name, "success", seconds)
        log.info("model %s version %s loaded in %.2f s (sha256 %s)", *key, seconds, model.identity["sha256"][:12])
        return model

    def _reason(self, err: Exception) -> str:
        reason = str(err) if isinstance(err, ModelLoadError) else f"unexpected {type(err).__name__}: {err}"
        return reason.replace(f"{self.repository.root}{os.sep}", "")  # paths inside the repository, short

    def _build_version(self, folder: VersionFolder, signature: Signature) -> ServedModel:
        # On a worker thread: read, verify, build and warm; the event loop keeps serving meanwhile.
        runtime = load_runtime(folder, intra_op_threads=self._threads)
        if folder.signature() != signature:  # written to while it was read: a later read gets it whole
            raise ModelLoadError(f"{folder.path} changed while it was being loaded: it is still being copied")
        return self._build(runtime)

    def _mark_loading(self, folder: VersionFolder) -> None:
        entry = self.repository.entry(folder.name)
        states = tuple(s for s in entry.states if s[0] != folder.version) + ((folder.version, LOADING, ""),)
        served = self.repository.served(folder.name)
        self.repository.publish(folder.name, served, ModelEntry(entry.versions, entry.policy, states, entry.unloaded))

    def _states(
        self, name: str, folders: list[VersionFolder], current: dict[str, ServedModel], chosen: dict[str, ServedModel]
    ) -> tuple[tuple[str, str, str], ...]:
        # Refusals (kept across re-reads) for the index; a version still served from older files says so.
        states = []
        for folder in folders:
            known = self._refused.get((name, folder.version))
            if known is None:
                continue
            if folder.version in chosen:
                states.append((folder.version, READY, f"serving the files loaded before; the new ones: {known[1]}"))
            else:
                states.append((folder.version, UNAVAILABLE, f"refused: {known[1]}"))
        return tuple(states)

    async def _retire(self, models: list[ServedModel], why: str) -> None:
        # Already unresolvable: wait for the requests that hold each, stop its batcher, let it go.
        for model in models:
            started = time.perf_counter()
            await model.drained()
            outcome = "success"
            try:
                await model.engine.__aexit__(None, None, None)
            except Exception:
                log.exception("model %s version %s did not stop cleanly", model.name, model.version)
                outcome = "failure"
            self._observers.unloaded(model.name, outcome)
            self._observers.forget(model)
            log.info(
                "model %s version %s unloaded (%s) after %.3f s of draining",
                model.name,
                model.version,
                why,
                time.perf_counter() - started,
            )


def verify(root: Path, default_model: str) -> None:
    """Load and check every version the policies select, once (ModelLoadError for the first that fails)."""
    for name, folders in scan_with_default(root, default_model).items():
        by_version = {folder.version: folder for folder in folders}
        for version in read_policy(root / name).select(list(by_version)):
            load_runtime(by_version[version])


def _why_retired(version: str, chosen: dict[str, ServedModel], found: set[str]) -> str:
    if version in chosen:
        return "its files were replaced: the new ones serve"
    if version in found:
        return "no longer selected by the version policy"
    return "its folder left the repository"


def _stale(version: str, current: dict[str, ServedModel], folders: dict[str, VersionFolder]) -> bool:
    model = current.get(version)
    return model is None or model.signature != folders[version].signature()


def _refusal(change: Change) -> str:
    refused = "; ".join(f"version {version} refused: {reason}" for version, reason in change.refused.items())
    serving = ", ".join(change.serving) or "none"
    return f"model '{change.name}': {refused} (serving now: version {serving})"


def _summary(change: Change) -> str:
    parts = [f"loaded {', '.join(change.loaded)}" if change.loaded else ""]
    parts.append(f"unloaded {', '.join(change.unloaded)}" if change.unloaded else "")
    parts.append(f"refused {', '.join(change.refused)}" if change.refused else "")
    return f"{change.name} " + ", ".join(part for part in parts if part)


_LIBC_NAME = ctypes.util.find_library("c")
_LIBC = ctypes.CDLL(_LIBC_NAME) if _LIBC_NAME else None
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD = 1024 * 1024  # bytes


def pin_mmap_threshold() -> None:
    """Serve allocations of 1 MiB and more from their own mappings, always, so freeing one returns its memory.

    NOTE: glibc raises its mmap threshold each time a large block is freed, up to 32 MiB; from then on an
    unloaded session's big blocks (its arena, warm-up buffers) stayed in the heap, fragmenting it: RSS after
    an unload came out 0-14% above the start at random. Pinned, 20 load/unload cycles stay within 2%.
    Smaller allocations, which requests make, are unchanged.
    """
    if _LIBC is not None and hasattr(_LIBC, "mallopt"):
        _LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def release_memory() -> None:
    """Collect what unloaded versions left, and hand glibc's free pages back to the OS.

    NOTE: a released onnxruntime session's memory goes back to glibc's heap, which keeps it for reuse;
    malloc_trim returns it, so RSS after an unload shows what was really freed.
    """
    gc.collect()
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)
