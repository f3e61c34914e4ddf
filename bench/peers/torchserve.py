"""TorchServe 0.12 (Java frontend, one Python backend worker) with its server-side batching on.

TorchServe's batch inference guide: set batchSize and maxBatchDelay per model (here in the archive's
model-config.yaml) and let the handler take a list. One worker (minWorkers = maxWorkers = 1) holds the
session, so one model instance runs at a time, as in every peer.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from bench.peers.common import IMAGE_REQUEST, Launch, Peer, PeerUnavailable, copy_app
from bench.servers import free_port

VERSION = "0.12.0"
BATCH_SIZE, MAX_BATCH_DELAY_MS = 32, 5
JOB_QUEUE_SIZE = 1000  # NOTE: the default, 100, is under the 128 connections of the last cell; a full queue is a 503

MODEL_CONFIG = f"""\
minWorkers: 1
maxWorkers: 1
batchSize: {BATCH_SIZE}
maxBatchDelay: {MAX_BATCH_DELAY_MS}
responseTimeout: 120
"""


# TorchServe's logging guide: a log4j2.xml of one's own through vmargs. This one drops the line per request
# (access log) and per batch (metrics, backend timings) but keeps warnings and the worker's tracebacks.
LOG4J2 = """\
<Configuration status="WARN">
  <Appenders>
    <Console name="STDOUT" target="SYSTEM_OUT"><PatternLayout pattern="%d{ISO8601} [%-5p] %t %c - %m%n"/></Console>
  </Appenders>
  <Loggers>
    <Logger name="ACCESS_LOG" level="off"/>
    <Logger name="TS_METRICS" level="off"/>
    <Logger name="MODEL_METRICS" level="off"/>
    <Root level="warn"><AppenderRef ref="STDOUT"/></Root>
  </Loggers>
</Configuration>
"""


def _properties(port: int, store: Path, log4j2: Path) -> str:
    return "\n".join(
        [
            f"inference_address=http://127.0.0.1:{port}",
            f"management_address=http://127.0.0.1:{free_port()}",
            f"metrics_address=http://127.0.0.1:{free_port()}",
            f"model_store={store}",
            "load_models=mnist_cnn",
            "default_workers_per_model=1",
            f"job_queue_size={JOB_QUEUE_SIZE}",
            "disable_token_authorization=true",
            "install_py_dep_per_model=false",
            "async_logging=true",
            f"vmargs=-Dlog4j.configurationFile=file://{log4j2}",
            "disable_system_metrics=true",
            "",
        ]
    )


def prepare(venv: Path, work_dir: Path, port: int) -> Launch:
    """Archive the handler (no-archive layout: a folder in the model store) and write config.properties."""
    if shutil.which("java") is None:
        raise PeerUnavailable("TorchServe's frontend needs Java 17 on PATH (`apt-get install openjdk-17-jre-headless`)")
    handler = copy_app("torchserve_handler.py", work_dir)
    (work_dir / "model-config.yaml").write_text(MODEL_CONFIG)
    store = work_dir / "model_store"
    store.mkdir()
    archive = [str(venv / "bin" / "torch-model-archiver"), "--model-name", "mnist_cnn", "--version", "1.0"]
    archive += ["--handler", str(handler), "--config-file", str(work_dir / "model-config.yaml")]
    archive += ["--export-path", str(store), "--archive-format", "no-archive"]
    done = subprocess.run(archive, capture_output=True, text=True)
    if done.returncode != 0:
        raise PeerUnavailable(f"torch-model-archiver failed: {(done.stderr or done.stdout).strip()[-300:]}")
    (work_dir / "log4j2.xml").write_text(LOG4J2)
    (work_dir / "config.properties").write_text(_properties(port, store, work_dir / "log4j2.xml"))
    command = [str(venv / "bin" / "torchserve"), "--start", "--foreground", "--ncs"]
    command += ["--ts-config", str(work_dir / "config.properties"), "--model-store", str(store)]
    # NOTE: torchserve keeps a pid file in the temp folder and refuses to start beside another; give it its own
    env = {"TMPDIR": str(work_dir), "LOG_LOCATION": str(work_dir / "logs")}
    return Launch(command, ready_path="/ping", cwd=work_dir, env=env)


PEER = Peer(
    name="torchserve",
    title=f"TorchServe {VERSION}",
    version=VERSION,
    # torch and pyyaml: TorchServe's worker imports both without declaring them (the CPU torch lies in
    # /opt/wheels here); the handler itself uses neither
    requirements=(
        f"torchserve=={VERSION}",
        f"torch-model-archiver=={VERSION}",
        "torch==2.13.0",
        "pyyaml==6.0.4",
        "onnxruntime==1.32.0",
        "numpy==2.4.6",
        "pillow==13.0.0",
    ),
    request=IMAGE_REQUEST,
    path="/predictions/mnist_cnn",
    settings=(
        f"batchSize {BATCH_SIZE}, maxBatchDelay {MAX_BATCH_DELAY_MS} ms, 1 worker, job_queue_size {JOB_QUEUE_SIZE}, "
        "access and metrics logs off, custom handler: service.preprocess + onnxruntime (1 thread)"
    ),
    prepare=prepare,
    start_timeout=180.0,
)
