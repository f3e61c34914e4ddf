"""TorchServe custom handler: a batch of multipart uploads (field `file`) -> one onnxruntime run -> answers."""

from __future__ import annotations

import numpy as np

from bench.peers.apps.onnx_digit import answer, load_session, prepare, probabilities


class MnistHandler:
    """TorchServe calls initialize once per worker, then handle with up to batchSize requests."""

    def initialize(self, context: object) -> None:
        self.session = load_session()

    def handle(self, data: list[dict], context: object) -> list[dict]:
        # Each row is one request: a multipart field by its name, a raw body under "body" or "data".
        images = np.stack([prepare(_upload(row)) for row in data])  # (N, 1, 28, 28)
        return [answer(row) for row in probabilities(self.session, images)]


def _upload(row: dict) -> bytes:
    for key in ("file", "data", "body"):
        if row.get(key) is not None:
            return bytes(row[key])
    raise ValueError(f"no image in the request (fields: {', '.join(row)})")
