"""Triton Inference Server, as PyTriton (nvidia-pytriton) ships it: the tritonserver binary in the wheel.

The model is a Python callable (PyTriton's way: Triton's python backend hands each batch to this process),
running the committed ONNX file in onnxruntime; Triton's dynamic batcher is on, as its optimization guide
recommends, with its default queue delay (none: a batch is whatever queued while the instance was busy).
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

from bench.peers.common import V2_REQUEST, Launch, Peer, copy_app
from bench.servers import free_port

VERSION = "0.7.0"
MAX_BATCH_SIZE, MAX_QUEUE_DELAY_US = 64, 0


def prepare(venv: Path, work_dir: Path, port: int) -> Launch:
    """Copy the PyTriton script; it binds HTTP to port, gRPC and metrics to free ports, all on loopback."""
    script = copy_app("triton_app.py", work_dir)
    command = [str(venv / "bin" / "python"), str(script), "--http-port", str(port)]
    command += ["--grpc-port", str(free_port()), "--metrics-port", str(free_port())]
    command += ["--max-batch-size", str(MAX_BATCH_SIZE), "--max-queue-delay-us", str(MAX_QUEUE_DELAY_US)]
    # NOTE: the python backend stub links libpython3.X.so; without this it finds the system's (3.11.2 on Debian)
    # under the venv's newer stdlib, and fails in multiprocessing. The venv's base interpreter has its own.
    env = {"TMPDIR": str(work_dir), "LD_LIBRARY_PATH": str(sysconfig.get_config_var("LIBDIR"))}
    return Launch(command, ready_path="/v2/models/mnist_cnn/ready", cwd=work_dir, env=env)


PEER = Peer(
    name="triton",
    title=f"Triton (PyTriton {VERSION})",
    version=VERSION,
    requirements=(f"nvidia-pytriton=={VERSION}", "onnxruntime==1.32.0", "numpy==1.26.4"),  # PyTriton wants numpy < 2
    request=V2_REQUEST,
    path="/v2/models/mnist_cnn/infer",
    settings=(
        f"dynamic batching (max_batch_size {MAX_BATCH_SIZE}, max_queue_delay {MAX_QUEUE_DELAY_US} µs), "
        "1 model instance (one bound callable), onnxruntime 1 thread in PyTriton's Python callable"
    ),
    prepare=prepare,
    start_timeout=180.0,
)
