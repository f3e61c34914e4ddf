"""Start, time, measure and stop the servers under test: the service and the PyTorch reference."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Server:
    """One server process on 127.0.0.1:port; `ready_path` answers 200 once it serves."""

    name: str
    command: list[str]
    port: int
    ready_path: str
    cpus: str | None = None  # taskset CPU list, e.g. "0"
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log_dir: Path) -> float:
        """Start the process and wait until ready; the seconds from spawn to the first 200."""
        command = (["taskset", "-c", self.cpus] if self.cpus else []) + self.command
        env = {key: value for key, value in os.environ.items() if not key.startswith("MNIST_")}
        env |= {"PYTHONPATH": str(REPO_ROOT), **self.env}
        self.log_path = log_dir / f"{self.name}-{self.port}.log"
        with open(self.log_path, "a") as log:  # NOTE: a file, never a pipe nobody reads
            start = time.perf_counter()
            self.process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            if _answers(self.base_url + self.ready_path):
                return time.perf_counter() - start
            if time.perf_counter() - start > 60:
                self.stop()
                raise RuntimeError(f"{self.name} not ready after 60 s; see {self.log_path}")
            time.sleep(0.005)

    def rss_bytes(self) -> int:
        """Resident memory of the server process and its children (uvicorn workers), from /proc."""
        assert self.process is not None
        return sum(_rss(pid) for pid in _tree(self.process.pid))

    def stop(self) -> None:
        """SIGTERM (uvicorn drains and exits), SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _tree(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = children.read_text().split() if children.exists() else []
    return [pid, *(p for kid in kids for p in _tree(int(kid)))]


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


def service(port: int, cpus: str | None, workers: int = 1) -> Server:
    """`python -m service` serving the committed model."""
    command = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers), "--log-level", "warning"]
    return Server("service", command, port, "/health/ready", cpus)


def reference(port: int, cpus: str | None) -> Server:
    """bench/reference_server.py under plain uvicorn, the way tutorials run it."""
    command = [sys.executable, "-m", "uvicorn", "bench.reference_server:app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return Server("reference", command, port, "/health", cpus)
