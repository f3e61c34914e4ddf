"""LitServe with server-side batching: multipart uploads (field `file`) -> one onnxruntime run per batch.

python litserve_app.py --port 8000 --max-batch-size 64 --batch-timeout 0.005
"""

from __future__ import annotations

import argparse

import litserve as ls
import numpy as np

from bench.peers.apps.onnx_digit import answer, load_session, prepare, probabilities


class MnistAPI(ls.LitAPI):
    """decode (per request) -> batch -> predict (once per batch) -> unbatch -> encode (per request)."""

    def setup(self, device: str) -> None:
        self.session = load_session()

    # NOTE: no annotation on request: LitServe then hands over the parsed form (annotated, FastAPI wants JSON)
    def decode_request(self, request) -> np.ndarray:
        upload = request["file"]
        data = upload if isinstance(upload, bytes) else upload.file.read()
        return prepare(data)  # (1, 28, 28)

    def batch(self, inputs: list[np.ndarray]) -> np.ndarray:
        return np.stack(inputs)  # (N, 1, 28, 28)

    def predict(self, images: np.ndarray) -> np.ndarray:
        return probabilities(self.session, images)  # (N, 10)

    def unbatch(self, output: np.ndarray) -> list[np.ndarray]:
        return list(output)

    def encode_response(self, output: np.ndarray) -> dict:
        return answer(output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--batch-timeout", type=float, default=0.005, help="seconds")
    args = parser.parse_args()
    api = MnistAPI(max_batch_size=args.max_batch_size, batch_timeout=args.batch_timeout)
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=1, timeout=30)
    server.run(host="127.0.0.1", port=args.port, log_level="warning", generate_client_file=False)  # no access log


if __name__ == "__main__":
    main()
