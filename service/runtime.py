"""Load the ONNX model, verify it against its card and the contract, and run it; no HTTP in here."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from service.errors import ModelLoadError

log = logging.getLogger(__name__)

INPUT_NAME = "image"
INPUT_SHAPE = (1, 28, 28)  # per image; the batch dimension is dynamic
# The contract: every output by name with its per-image shape, in graph order (the order pages show them).
OUTPUT_SHAPES: dict[str, tuple[int, ...]] = {
    "conv1": (32, 26, 26),
    "pool1": (32, 13, 13),
    "conv2": (64, 11, 11),
    "pool2": (64, 5, 5),
    "conv3": (128, 3, 3),
    "flatten": (1152,),
    "logits": (10,),
    "probabilities": (10,),
}
LAYER_NAMES = tuple(OUTPUT_SHAPES)
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
            f"model card {card_path} not found: put the card beside the model or set MNIST_CARD_PATH"
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
            f"model file {model_path} not found: train and export it, or set MNIST_MODEL_PATH"
        ) from None
    except OSError as err:
        raise ModelLoadError(f"model file {model_path} is not readable: {err}") from None


def _shape_problem(name: str, kind: str, shape: Sequence[Any], expected: tuple[int, ...]) -> str | None:
    # The batch dimension must be symbolic ("N") or missing a value; the rest must match exactly.
    if len(shape) != len(expected) + 1 or isinstance(shape[0], int) or list(shape[1:]) != list(expected):
        wanted = ", ".join(["N", *map(str, expected)])
        return f"{kind} '{name}' has shape {list(shape)}, the contract says ({wanted})"
    return None


def _contract_problems(session: ort.InferenceSession) -> list[str]:
    problems: list[str | None] = []
    inputs = session.get_inputs()
    if [i.name for i in inputs] != [INPUT_NAME]:
        problems.append(f"inputs are {[i.name for i in inputs]}, the contract says ['{INPUT_NAME}']")
    else:
        if inputs[0].type != "tensor(float)":
            problems.append(f"input '{INPUT_NAME}' is {inputs[0].type}, the contract says tensor(float)")
        problems.append(_shape_problem(INPUT_NAME, "input", inputs[0].shape, INPUT_SHAPE))
    outputs = {o.name: o for o in session.get_outputs()}
    for name, expected in OUTPUT_SHAPES.items():
        if name not in outputs:
            problems.append(f"output '{name}' is missing")
            continue
        if outputs[name].type != "tensor(float)":
            problems.append(f"output '{name}' is {outputs[name].type}, the contract says tensor(float)")
        problems.append(_shape_problem(name, "output", outputs[name].shape, expected))
    return [p for p in problems if p]


class ModelRuntime:
    """An onnxruntime session for the verified model, plus its card."""

    def __init__(self, session: ort.InferenceSession, card: dict[str, Any]) -> None:
        self._session = session
        self.card = card

    @classmethod
    def load(cls, model_path: Path, card_path: Path, *, intra_op_threads: int = 1) -> ModelRuntime:
        """Read the card and the model, check sha256 and the contract; raise ModelLoadError with one line."""
        model_path, card_path = Path(model_path), Path(card_path)
        data = _read_model(model_path)
        card = _read_card(card_path)
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
        problems = _contract_problems(session)
        if problems:
            raise ModelLoadError(f"model file {model_path} breaks the service contract: {'; '.join(problems)}")
        runtime = cls(session, card)
        runtime._smoke_test(model_path)
        log.info("loaded model %s %s (sha256 %s)", runtime.name, runtime.version, runtime.sha256)
        return runtime

    def _smoke_test(self, model_path: Path) -> None:
        # Declared shapes can lie (symbolic everywhere); one real run of two images shows the truth.
        try:
            values = self.run(np.zeros((2, *INPUT_SHAPE), np.float32), LAYER_NAMES)
        except Exception as err:
            raise ModelLoadError(f"model file {model_path} fails a test run: {err}") from None
        for name, expected in OUTPUT_SHAPES.items():
            if values[name].shape != (2, *expected) or values[name].dtype != np.float32:
                raise ModelLoadError(
                    f"model file {model_path} breaks the service contract: output '{name}' came out "
                    f"{values[name].dtype} {values[name].shape[1:]}, the contract says float32 {expected}"
                )

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
        if images.dtype != np.float32 or images.shape[1:] != INPUT_SHAPE:
            raise ValueError(f"images must be float32 (N, 1, 28, 28), got {images.dtype} {images.shape}")
        names = list(outputs)
        values = self._session.run(names, {INPUT_NAME: images})
        return dict(zip(names, values, strict=True))
