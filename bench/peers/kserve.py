"""KServe's Python model server (the `kserve` package, the server inside a KServe InferenceService pod).

KServe's batching is the agent's batcher sidecar of an InferenceService on Kubernetes (`batcher:` in its
spec), not part of the Python server; run bare, as here, every request is one model call. One worker
process, one model.
"""

from __future__ import annotations

from pathlib import Path

from bench.peers.common import V2_REQUEST, Launch, Peer, copy_app
from bench.servers import free_port

VERSION = "0.21.0"


def prepare(venv: Path, work_dir: Path, port: int) -> Launch:
    """Copy the model server script; HTTP on port, gRPC on a free port."""
    script = copy_app("kserve_app.py", work_dir)
    command = [str(venv / "bin" / "python"), str(script), "--http_port", str(port), "--grpc_port", str(free_port())]
    command += ["--workers", "1", "--enable_latency_logging", "false"]  # no log line per request
    return Launch(command, ready_path="/v2/models/mnist_cnn/ready", cwd=work_dir)


PEER = Peer(
    name="kserve",
    title=f"KServe {VERSION} model server",
    version=VERSION,
    requirements=(f"kserve=={VERSION}", "onnxruntime==1.32.0", "numpy==2.4.6"),
    request=V2_REQUEST,
    path="/v2/models/mnist_cnn/infer",
    settings=(
        "no batching (KServe batches in the InferenceService agent sidecar, which needs Kubernetes), "
        "1 worker, onnxruntime 1 thread in a custom kserve.Model"
    ),
    prepare=prepare,
)
