"""Start a server process on loopback, wait until it answers, read its memory, stop it.

The one launcher of the benchmarks (bench/run.py), the tests (tests/service/servers.py) and the soak
(scripts/soak.py): a child whose output goes to a log file, ready once a path answers 200, resident
memory read from /proc.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

REPO_ROOT = Path(__file__).resolve().parents[1]
COMMITTED_REPOSITORY = REPO_ROOT / "models"  # the committed models, <name>/<version>/model.onnx + card.json
READY_TIMEOUT = 60.0  # seconds
# NOTE: bench times cold start to the first 200, so poll often; a refused connect costs microseconds.
POLL_INTERVAL = 0.005  # seconds


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**variables: str) -> dict[str, str]:
    """This process's environment without its MNIST_* variables, the checkout importable, plus variables."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MNIST_")}
    return env | {"PYTHONPATH": str(REPO_ROOT)} | variables


def service_env(repository: Path, **extra: str) -> dict[str, str]:
    """The environment of a `python -m service` child: our model repository via MNIST_*, no stray MNIST_* ones."""
    return clean_env(MNIST_MODEL_REPOSITORY=str(repository), **extra)


def service_command(port: int, *flags: str) -> list[str]:
    """`python -m service` on 127.0.0.1:port, with flags."""
    return [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port), *flags]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):  # HTTPError (a 503) is a URLError
        return False


def wait_ready(
    process: subprocess.Popen, base_url: str, ready_path: str = "/health/ready", timeout: float = READY_TIMEOUT
) -> None:
    """Poll base_url + ready_path until it answers 200; RuntimeError if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}")
        if _answers(base_url + ready_path):
            return
        time.sleep(POLL_INTERVAL)
    raise RuntimeError(f"not ready after {timeout:g} s")


def stop(process: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM (uvicorn drains and exits), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# ---- memory, from /proc ------------------------------------------------------------------------------


def memory_mib(pid: int) -> dict[str, float]:
    """The process's resident memory now (VmRSS) and its peak so far (VmHWM), in MiB.

    ProcessLookupError once the process is gone (or a zombie, which has no memory left to report).
    """
    values = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(value.split()[0]) / 1024  # kB -> MiB
    except FileNotFoundError:
        pass
    if "VmRSS" not in values:
        raise ProcessLookupError(f"no resident memory for pid {pid}: the process is gone")
    return values


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """CPU time the process (all its threads), or one thread of it, has used so far, user and system, from
    /proc/PID/stat or /proc/PID/task/TID/stat."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    with open(path) as stat:
        fields = stat.read().rpartition(")")[2].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime, in clock ticks


def descendants(pid: int) -> list[int]:
    """pid and every process below it (uvicorn's workers), from /proc/PID/task/PID/children."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        children = []
    return [pid, *(grandchild for child in children for grandchild in descendants(int(child)))]


def tree_rss_mib(pid: int) -> float:
    """Resident memory of pid and its descendants, in MiB; a child that exits meanwhile counts 0."""
    total = 0.0
    for process in descendants(pid):
        with suppress(ProcessLookupError):
            total += memory_mib(process)["VmRSS"]
    return total


# ---- a server ----------------------------------------------------------------------------------------


@dataclass
class Server:
    """One server process on 127.0.0.1:port; `ready_path` answers 200 once it serves."""

    name: str
    command: list[str]
    port: int
    env: dict[str, str] = field(default_factory=clean_env)  # the child's whole environment
    ready_path: str = "/health/ready"
    cpus: str | None = None  # taskset CPU list, e.g. "0"
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    cwd: Path = REPO_ROOT  # another checkout's root, to run its code (bench/ab.py)

    @classmethod
    def for_service(
        cls, env: dict[str, str], port: int | None = None, *flags: str, cpus: str | None = None, name: str = "service"
    ) -> Self:
        """`python -m service` with env (see service_env) on 127.0.0.1:port, a free port by default."""
        port = port or free_port()
        return cls(name, service_command(port, *flags), port, env, cpus=cpus)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def start(self, log_dir: Path, timeout: float = READY_TIMEOUT) -> float:
        """Start the process and wait until ready; the seconds from spawn to the first 200.

        RuntimeError with the server's output if it exits or is not ready in time (it is stopped first).
        """
        command = (["taskset", "-c", self.cpus] if self.cpus else []) + self.command
        self.log_path = log_dir / f"{self.name}-{self.port}.log"
        with open(self.log_path, "a") as log:  # NOTE: a file, never a pipe nobody reads, which would fill and block
            started = time.perf_counter()
            self.process = subprocess.Popen(command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(self.process, self.url, self.ready_path, timeout)
        except RuntimeError as err:
            self.stop()
            message = f"{self.name} on port {self.port} {err}; its output ({self.log_path}):\n{self.log()}"
            raise RuntimeError(message) from None
        return time.perf_counter() - started

    @contextmanager
    def running(self, log_dir: Path) -> Iterator[Self]:
        """This server, started and ready (see start); stopped at the end if still up."""
        self.start(log_dir)
        try:
            yield self
        finally:
            self.stop()

    def log(self) -> str:
        """Everything the server has written to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def rss_mib(self) -> float:
        """Resident memory of the server process and its children (uvicorn workers), in MiB."""
        return tree_rss_mib(self.pid)

    def stop(self) -> None:
        """SIGTERM (uvicorn drains and exits), SIGKILL if it lingers; nothing if it is not running."""
        if self.process is not None:
            stop(self.process)


# ---- the two servers the benchmark compares ----------------------------------------------------------


def service(port: int, cpus: str | None, workers: int = 1) -> Server:
    """`python -m service` serving the committed models, access logs off."""
    flags = ("--workers", str(workers), "--log-level", "warning")
    return Server.for_service(service_env(COMMITTED_REPOSITORY), port, *flags, cpus=cpus)


def reference(port: int, cpus: str | None) -> Server:
    """bench/reference_server.py under plain uvicorn, the way tutorials run it."""
    command = [sys.executable, "-m", "uvicorn", "bench.reference_server:app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return Server("reference", command, port, ready_path="/health", cpus=cpus)
