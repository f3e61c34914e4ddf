"""The tutorial way to serve the MNIST convnet, for comparison: FastAPI + PyTorch eager, one forward per request.

`uvicorn bench.reference_server:app --host 127.0.0.1 --port 8001` serves it. It answers POST /predict with
multipart field `file`, like the service. Weights come from artifacts/mnist_cnn.pt when present, else from
the initializers of models/mnist_cnn/1/model.onnx (the same numbers: the ONNX file is exported from that model).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from fastapi import FastAPI, UploadFile
from PIL import Image

from training.model import MnistCNN

REPO_ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = REPO_ROOT / "artifacts" / "mnist_cnn.pt"
ONNX_MODEL = REPO_ROOT / "models" / "mnist_cnn" / "1" / "model.onnx"


def load_weights(model: MnistCNN) -> None:
    """The trained weights: the training checkpoint, else the ONNX file's initializers (named model.<param>)."""
    if CHECKPOINT.exists():
        checkpoint = torch.load(CHECKPOINT, map_location="cpu", weights_only=False)
        model.load_state_dict(checkpoint.get("state_dict", checkpoint))
        return
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(ONNX_MODEL)).graph
    weights = {
        init.name.removeprefix("model."): torch.from_numpy(numpy_helper.to_array(init).copy())
        for init in graph.initializer
    }
    model.load_state_dict(weights)


if "BENCH_TORCH_THREADS" in os.environ:  # tutorials leave torch's default (one thread per core); bench/run.py may not
    torch.set_num_threads(int(os.environ["BENCH_TORCH_THREADS"]))
model = MnistCNN()
load_weights(model)
model.eval()

app = FastAPI(title="MNIST reference (PyTorch eager)")


@app.post("/predict")
async def predict(file: UploadFile) -> dict:
    contents = await file.read()
    image = Image.open(io.BytesIO(contents)).convert("L").resize((28, 28))
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).reshape(1, 1, 28, 28)
    with torch.no_grad():
        probabilities = torch.softmax(model(x), dim=1)[0]
    digit = int(probabilities.argmax())
    return {"digit": digit, "confidence": float(probabilities[digit]), "probabilities": probabilities.tolist()}


@app.get("/health")
async def health() -> dict:
    return {"status": "ok"}
