"""The repository on disk for bench/rollout.py: a copy of the committed models, changed as an operator would.

Versions of MODEL are copies of the committed classic, renamed in whole (or half-copied, their card later),
replaced in place file by file, removed; OTHER is moved out of the repository and back.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from bench.servers import COMMITTED_REPOSITORY

MODEL, OTHER = "mnist_cnn", "mnist_modern"  # the load asks MODEL only; OTHER is unloaded and loaded again
CLASSIC = COMMITTED_REPOSITORY / MODEL / "1"  # every version of MODEL made here is a copy of it
Identity = tuple[str, str]  # (version, sha256) of MODEL


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
