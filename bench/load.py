"""Request bodies for each endpoint, and `wrk` (Debian's package) driving them over loopback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

DIGIT_PNG = Path(__file__).with_name("digit.png")  # MNIST test image 0 (a 7), 28x28, 250 bytes
BOUNDARY = "benchboundary7MA4YWxkTrZu0gW"

# wrk runs this in each of its threads. The body is read from a file: a Lua string literal would need escaping.
# With BENCH_LIMIT set, a thread stops after that many responses and touches BENCH_DONE (for the memory phase):
# NOTE: wrk's main thread still sleeps out -d, so the caller interrupts it (SIGINT) once every thread is done.
WRK_SCRIPT = r"""
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE")
local json_length = os.getenv("BENCH_HEADER_LENGTH") or ""
if json_length ~= "" then
  wrk.headers["Inference-Header-Content-Length"] = json_length
end
local limit = tonumber(os.getenv("BENCH_LIMIT") or "0")
if limit > 0 then
  local count = 0
  function response(status, headers, body)
    count = count + 1
    if count == limit then
      io.open(os.getenv("BENCH_DONE") .. tostring(wrk.thread), "w"):close()
      wrk.thread:stop()
    end
  end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "seconds": %.6f, "non_2xx": %d, "socket_errors": %d, '
    .. '"p50_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(95) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3))
end
"""


@dataclass(frozen=True)
class Body:
    """What one kind of request posts: its path (with query), Content-Type and bytes."""

    path: str
    content_type: str
    data: bytes
    header_length: int | None = None  # V2 binary tensors: Inference-Header-Content-Length, the JSON's bytes

    def headers(self) -> dict[str, str]:
        """Its headers besides Content-Type and Content-Length."""
        if self.header_length is None:
            return {}
        return {"Inference-Header-Content-Length": str(self.header_length)}


def multipart(field: str, files: list[bytes]) -> Body:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="digit{i}.png"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode()
        + data
        + b"\r\n"
        for i, data in enumerate(files)
    ]
    return Body("", f"multipart/form-data; boundary={BOUNDARY}", b"".join(parts) + f"--{BOUNDARY}--\r\n".encode())


def bodies(png: bytes) -> dict[str, Body]:
    """Every benchmarked request, by the name the report uses."""
    single = multipart("file", [png])
    pixels = np.asarray(Image.open(DIGIT_PNG).convert("L"), np.float32) / 255.0  # (28, 28)
    v2 = {
        "inputs": [{"name": "image", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": pixels.ravel().tolist()}],
        "outputs": [{"name": "probabilities"}],
    }
    binary = {
        "inputs": [
            {"name": "image", "shape": [1, 1, 28, 28], "datatype": "FP32", "parameters": {"binary_data_size": 3136}}
        ],
        "outputs": [{"name": "probabilities"}],
    }
    binary_json = json.dumps(binary, separators=(",", ":")).encode()
    return {
        "/predict": Body("/predict", single.content_type, single.data),
        "/feature-maps?format=compact": Body("/feature-maps?format=compact", single.content_type, single.data),
        "/predict/batch (8 files)": Body("/predict/batch", single.content_type, multipart("files", [png] * 8).data),
        "V2 infer (JSON, 1 image)": Body(
            "/v2/models/mnist_cnn/infer", "application/json", json.dumps(v2, separators=(",", ":")).encode()
        ),
        "V2 infer (binary, 1 image)": Body(
            "/v2/models/mnist_cnn/infer",
            "application/octet-stream",
            binary_json + pixels.astype("<f4").tobytes(),
            header_length=len(binary_json),
        ),
    }


@dataclass(frozen=True)
class Result:
    """One wrk run: throughput and latency percentiles (closed loop: each connection waits for its answer)."""

    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_path() -> str:
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("bench: wrk not found: `apt-get install -y wrk` (Debian's package)")
    return found


def run_wrk(
    base_url: str, body: Body, work_dir: Path, *, connections: int, seconds: float, cpus: str | None, limit: int = 0
) -> Result:
    """Drive one endpoint with `connections` concurrent connections for `seconds` (or until `limit` answers)."""
    script = work_dir / "post.lua"
    script.write_text(WRK_SCRIPT)
    body_file = work_dir / "body.bin"
    body_file.write_bytes(body.data)
    threads = 1 if connections < 64 else 2  # one thread keeps up with these rates; 2 spreads 128 sockets
    command = (["taskset", "-c", cpus] if cpus else []) + [wrk_path(), f"-t{threads}", f"-c{connections}"]
    command += [f"-d{seconds:g}s", "--timeout", "10s", "--latency", "-s", str(script), base_url + body.path]
    env = os.environ | {
        "BENCH_BODY": str(body_file),
        "BENCH_CONTENT_TYPE": body.content_type,
        "BENCH_LIMIT": str(-(-limit // threads) if limit else 0),
        "BENCH_HEADER_LENGTH": "" if body.header_length is None else str(body.header_length),
    }
    done_dir = work_dir / "done"
    shutil.rmtree(done_dir, ignore_errors=True)
    done_dir.mkdir()
    env["BENCH_DONE"] = str(done_dir / "thread-")
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if limit:
        while process.poll() is None and len(list(done_dir.iterdir())) < threads:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
    out, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{out}{err}")
    line = next((line for line in out.splitlines() if line.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    return Result(**json.loads(line.removeprefix("BENCH ")))
