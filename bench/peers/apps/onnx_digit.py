"""The model every peer serves: our preprocessing and the committed ONNX file, one onnxruntime thread.

Imported inside a peer's venv (numpy, pillow where it takes images, onnxruntime) with the checkout on
PYTHONPATH, so an image peer prepares a PNG exactly as `POST /predict` does and all run the same graph.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from bench.servers import COMMITTED_REPOSITORY

MODEL = COMMITTED_REPOSITORY / "mnist_cnn" / "1" / "model.onnx"
MAX_PIXELS = 4096 * 4096  # the service's default MNIST_MAX_IMAGE_PIXELS
INPUT, OUTPUT = "image", "probabilities"


def load_session() -> ort.InferenceSession:
    """The committed model on the CPU, one intra-op and one inter-op thread (as the service runs it)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(MODEL), options, providers=["CPUExecutionProvider"])


def prepare(png: bytes) -> np.ndarray:
    """Image bytes -> (1, 28, 28) float32, the service's own decoding and MNIST crop/centre."""
    from service.preprocess import prepare_digit  # NOTE: needs pillow; the V2 peers never call this

    return prepare_digit(png, max_pixels=MAX_PIXELS)[None]


def probabilities(session: ort.InferenceSession, images: np.ndarray) -> np.ndarray:
    """(N, 1, 28, 28) float32 -> (N, 10) probabilities."""
    return session.run([OUTPUT], {INPUT: np.ascontiguousarray(images, dtype=np.float32)})[0]


def answer(row: np.ndarray) -> dict:
    """One image's (10,) probabilities as the service's /predict answers them."""
    digit = int(row.argmax())
    return {"digit": digit, "confidence": float(row[digit]), "probabilities": row.tolist()}
