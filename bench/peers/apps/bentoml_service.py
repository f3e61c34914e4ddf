"""BentoML service with adaptive batching: multipart uploads (field `file`) -> one onnxruntime run per batch.

bentoml serve bentoml_service:MnistService --port 3000
"""

from __future__ import annotations

import os
from pathlib import Path

import bentoml

from bench.peers.apps.onnx_digit import answer, load_session, prepare, probabilities

MAX_BATCH_SIZE = int(os.environ.get("BENCH_MAX_BATCH_SIZE", "64"))
MAX_LATENCY_MS = int(os.environ.get("BENCH_MAX_LATENCY_MS", "1000"))


# One worker process, one request thread (BentoML's default), no access log line per request (as the service)
@bentoml.service(workers=1, threads=1, traffic={"timeout": 30}, logging={"access": {"enabled": False}})
class MnistService:
    """POST /predict: the uploads of a batch are decoded one by one, then run through the model together."""

    def __init__(self) -> None:
        self.session = load_session()

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def predict(self, file: list[Path]) -> list[dict]:
        import numpy as np

        images = np.stack([prepare(path.read_bytes()) for path in file])  # (N, 1, 28, 28)
        return [answer(row) for row in probabilities(self.session, images)]
