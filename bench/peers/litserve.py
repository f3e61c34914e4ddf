"""Lightning AI's LitServe with its batching on (LitAPI max_batch_size and batch_timeout, its docs' knobs).

One inference worker (workers_per_device 1 on the CPU), so one model runs at a time.
"""

from __future__ import annotations

from pathlib import Path

from bench.peers.common import IMAGE_REQUEST, Launch, Peer, copy_app

VERSION = "0.2.19"
MAX_BATCH_SIZE, BATCH_TIMEOUT_S = 64, 0.005


def prepare(venv: Path, work_dir: Path, port: int) -> Launch:
    """Copy the LitServe script; it serves POST /predict and GET /health on port."""
    script = copy_app("litserve_app.py", work_dir)
    command = [str(venv / "bin" / "python"), str(script), "--port", str(port)]
    command += ["--max-batch-size", str(MAX_BATCH_SIZE), "--batch-timeout", str(BATCH_TIMEOUT_S)]
    return Launch(command, ready_path="/health", cwd=work_dir)


PEER = Peer(
    name="litserve",
    title=f"LitServe {VERSION}",
    version=VERSION,
    requirements=(
        f"litserve=={VERSION}",
        "onnxruntime==1.32.0",
        "numpy==2.4.6",
        "pillow==13.0.0",
        "python-multipart==0.0.34",
    ),
    request=IMAGE_REQUEST,
    path="/predict",
    settings=(
        f"batching max_batch_size {MAX_BATCH_SIZE}, batch_timeout {BATCH_TIMEOUT_S * 1000:g} ms, "
        "1 worker, LitAPI: service.preprocess + onnxruntime (1 thread)"
    ),
    prepare=prepare,
)
