"""Seldon's MLServer with a custom runtime and its adaptive batching on.

MLServer's docs: adaptive batching is switched on per model with max_batch_size and max_batch_time in
model-settings.json. parallel_workers 1 (its default) is one inference process holding the one model.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.peers.common import V2_REQUEST, Launch, Peer, copy_app
from bench.servers import free_port

VERSION = "1.7.1"
MAX_BATCH_SIZE, MAX_BATCH_TIME_S = 32, 0.005


def prepare(venv: Path, work_dir: Path, port: int) -> Launch:
    """A model folder: settings.json (server), model-settings.json (model, batching) and the runtime module."""
    models = work_dir / "models"
    models.mkdir()
    copy_app("mlserver_runtime.py", models)
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "parallel_workers": 1,
        "debug": False,
    }
    model = {
        "name": "mnist_cnn",
        "implementation": "mlserver_runtime.MnistRuntime",
        "max_batch_size": MAX_BATCH_SIZE,
        "max_batch_time": MAX_BATCH_TIME_S,
    }
    (models / "settings.json").write_text(json.dumps(settings, indent=2))
    (models / "model-settings.json").write_text(json.dumps(model, indent=2))
    command = [str(venv / "bin" / "mlserver"), "start", str(models)]
    return Launch(command, ready_path="/v2/models/mnist_cnn/ready", cwd=models)


PEER = Peer(
    name="mlserver",
    title=f"MLServer {VERSION}",
    version=VERSION,
    # NOTE: uvloop 0.22+ raises in asyncio.get_event_loop() with no loop, which MLServer 1.7.1's workers call
    # httptools: uvicorn's fast HTTP parser, which the service has too (KServe and LitServe bring it themselves)
    requirements=(f"mlserver=={VERSION}", "uvloop==0.21.0", "httptools==0.9.0", "onnxruntime==1.32.0", "numpy==2.4.6"),
    request=V2_REQUEST,
    path="/v2/models/mnist_cnn/infer",
    settings=(
        f"adaptive batching (max_batch_size {MAX_BATCH_SIZE}, max_batch_time {MAX_BATCH_TIME_S * 1000:g} ms), "
        "parallel_workers 1, onnxruntime 1 thread in a custom MLModel"
    ),
    prepare=prepare,
)
