"""BentoML 1.4 with adaptive batching on (`@bentoml.api(batchable=True, max_batch_size=..., max_latency_ms=...)`).

One worker process (`@bentoml.service(workers=1)`) holds the one model; BentoML's dispatcher forms batches.
"""

from __future__ import annotations

from pathlib import Path

from bench.peers.common import IMAGE_REQUEST, Launch, Peer, copy_app

VERSION = "1.4.40"
MAX_BATCH_SIZE, MAX_LATENCY_MS = 64, 1000


def prepare(venv: Path, work_dir: Path, port: int) -> Launch:
    """Copy the service module; `bentoml serve` imports it from the work folder."""
    copy_app("bentoml_service.py", work_dir)
    command = [str(venv / "bin" / "bentoml"), "serve", "bentoml_service:MnistService"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    env = {
        "BENCH_MAX_BATCH_SIZE": str(MAX_BATCH_SIZE),
        "BENCH_MAX_LATENCY_MS": str(MAX_LATENCY_MS),
        "BENTOML_HOME": str(work_dir / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "True",
    }
    return Launch(command, ready_path="/readyz", cwd=work_dir, env=env)


PEER = Peer(
    name="bentoml",
    title=f"BentoML {VERSION}",
    version=VERSION,
    requirements=(
        f"bentoml=={VERSION}",
        "httptools==0.9.0",  # uvicorn's fast HTTP parser, as the service has
        "uvloop==0.23.0",
        "onnxruntime==1.32.0",
        "numpy==2.4.6",
        "pillow==13.0.0",
    ),
    request=IMAGE_REQUEST,
    path="/predict",
    settings=(
        f"adaptive batching (max_batch_size {MAX_BATCH_SIZE}, max_latency_ms {MAX_LATENCY_MS}), 1 worker, "
        "service.preprocess + onnxruntime (1 thread)"
    ),
    prepare=prepare,
    start_timeout=180.0,
)
