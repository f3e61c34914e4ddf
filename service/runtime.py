"""Load one ONNX model, verify it against its card (sha256, the contract, a test run), and run it; no HTTP here."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from service.contract import IMAGE_SHAPE, Contract
from service.errors import ModelLoadError
from service.onnx_graph import Graph, GraphFormatError, read_graph

CARD_KEYS = ("name", "version", "sha256")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _session_options(intra_op_threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    # NOTE: one image is ~1 MFLOP; more threads per run only add hand-off cost. Parallelism comes
    # from running several requests (or a gathered batch) at once, not from splitting one run.
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 4  # fatal only: load failures become our one-line ModelLoadError
    return options


def _read_card(card_path: Path) -> dict[str, Any]:
    try:
        card = json.loads(card_path.read_text())
    except FileNotFoundError:
        raise ModelLoadError(
            f"model card {card_path} not found: export the model with its card (python -m training export)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"model card {card_path} is not readable JSON: {err}") from None
    if not isinstance(card, dict) or any(not isinstance(card.get(key), str) for key in CARD_KEYS):
        raise ModelLoadError(f"model card {card_path} lacks one of the string fields {', '.join(CARD_KEYS)}")
    return card


def _read_model(model_path: Path) -> bytes:
    try:
        return model_path.read_bytes()
    except FileNotFoundError:
        raise ModelLoadError(
            f"model file {model_path} not found: train and export it (python -m training export), "
            "or set MNIST_MODEL_REPOSITORY"
        ) from None
    except OSError as err:
        raise ModelLoadError(f"model file {model_path} is not readable: {err}") from None


class ModelRuntime:
    """An onnxruntime session for the verified model, plus its card and the contract read from it."""

    def __init__(
        self, session: ort.InferenceSession, card: dict[str, Any], contract: Contract, graph: Graph | None = None
    ) -> None:
        self._session = session
        self.card = card
        self.contract = contract
        self.graph = graph  # its nodes and weights, for what needs them (Grad-CAM); None if unreadable here

    @classmethod
    def load(cls, model_path: Path, card_path: Path, *, intra_op_threads: int = 1) -> ModelRuntime:
        """Read the card and the model, check sha256 and the contract; raise ModelLoadError with one line."""
        model_path, card_path = Path(model_path), Path(card_path)
        data = _read_model(model_path)
        card = _read_card(card_path)
        contract = Contract.from_card(card, str(card_path))
        # Hash the bytes we hand to onnxruntime, so the checked file is the file served.
        digest = sha256_bytes(data)
        if digest != card["sha256"].lower():
            raise ModelLoadError(
                f"model file {model_path} has sha256 {digest} but its card {card_path} says "
                f"{card['sha256']}: the file is corrupt or not the model the card describes; "
                "re-export it with its card"
            )
        try:
            session = ort.InferenceSession(data, _session_options(intra_op_threads), providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises several unrelated types for a bad graph
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelLoadError(f"onnxruntime cannot load {model_path}: {first_line}") from None
        problems = contract.graph_problems(session.get_inputs(), session.get_outputs())
        if problems:
            raise ModelLoadError(f"model file {model_path} does not match its card {card_path}: {'; '.join(problems)}")
        try:
            graph: Graph | None = read_graph(data)
        except GraphFormatError:  # served all the same; what needs the graph says it cannot
            graph = None
        runtime = cls(session, card, contract, graph)
        runtime._smoke_test(model_path)
        return runtime

    def _smoke_test(self, model_path: Path) -> None:
        # Declared shapes can lie (symbolic everywhere); one real run of two images shows the truth.
        try:
            values = self.run(np.zeros((2, *IMAGE_SHAPE), np.float32), self.contract.output_names)
        except Exception as err:
            raise ModelLoadError(f"model file {model_path} fails a test run: {err}") from None
        for spec in self.contract.outputs:
            value = values[spec.name]
            if value.shape != (2, *spec.shape) or value.dtype != np.float32:
                raise ModelLoadError(
                    f"model file {model_path} does not match its card: output '{spec.name}' came out "
                    f"{value.dtype} {value.shape[1:]}, the card says float32 {spec.shape}"
                )

    def warm_up(self, max_batch_size: int) -> None:
        """Run one image and a full batch through every output once, so the first requests find it warm."""
        for count in sorted({1, max_batch_size}):
            self.run(np.zeros((count, *IMAGE_SHAPE), np.float32), self.contract.output_names)

    @property
    def name(self) -> str:
        return self.card["name"]

    @property
    def version(self) -> str:
        return self.card["version"]

    @property
    def sha256(self) -> str:
        return self.card["sha256"]

    def run(self, images: np.ndarray, outputs: Sequence[str]) -> dict[str, np.ndarray]:
        """Run images (N, 1, 28, 28) float32 in [0, 1]; return only the named outputs, each (N, ...)."""
        if images.dtype != np.float32 or images.shape[1:] != IMAGE_SHAPE:
            raise ValueError(f"images must be float32 (N, 1, 28, 28), got {images.dtype} {images.shape}")
        names = list(outputs)
        values = self._session.run(names, {self.contract.input.name: images})
        return dict(zip(names, values, strict=True))
