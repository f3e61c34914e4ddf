"""Triton Inference Server through PyTriton: onnxruntime in the bound Python callable, dynamic batching on.

python triton_app.py --http-port 8000 --grpc-port 8001 --metrics-port 8002
"""

from __future__ import annotations

import argparse

import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

from bench.peers.apps.onnx_digit import INPUT, OUTPUT, load_session, probabilities


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for flag in ("--http-port", "--grpc-port", "--metrics-port"):
        parser.add_argument(flag, type=int, required=True)
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--max-queue-delay-us", type=int, default=0, help="Triton's default: no added wait")
    args = parser.parse_args()
    session = load_session()

    @batch  # Triton's dynamic batcher stacks the queued requests: image (N, 1, 28, 28)
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        return {OUTPUT: probabilities(session, inputs[INPUT])}

    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=args.http_port,
        grpc_address="127.0.0.1",
        grpc_port=args.grpc_port,
        metrics_address="127.0.0.1",
        metrics_port=args.metrics_port,
    )
    batcher = DynamicBatcher(max_queue_delay_microseconds=args.max_queue_delay_us)
    with Triton(config=config) as triton:
        triton.bind(
            model_name="mnist_cnn",
            infer_func=infer,  # one callable: one model instance
            inputs=[Tensor(name=INPUT, dtype=np.float32, shape=(1, 28, 28))],
            outputs=[Tensor(name=OUTPUT, dtype=np.float32, shape=(10,))],
            config=ModelConfig(max_batch_size=args.max_batch_size, batcher=batcher),
            strict=True,
        )
        triton.serve()


if __name__ == "__main__":
    main()
