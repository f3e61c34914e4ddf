"""A real `python -m service` child whose memory the tests can read (VmRSS, VmHWM from /proc/PID/status)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.service.servers import free_port, start_service, stop, wait_ready


def memory_mib(pid: int) -> dict[str, float]:
    """The process's resident memory now (VmRSS) and its peak so far (VmHWM), in MiB."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(value.split()[0]) / 1024  # kB -> MiB
    return values


def reset_peak(pid: int) -> bool:
    """Start VmHWM over from the current RSS (Linux >= 4.0); False where the kernel refuses."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class LiveService:
    """A running server: its base URL, its process and its log file."""

    url: str
    process: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_mib(self) -> float:
        return memory_mib(self.pid)["VmRSS"]

    def peak_mib(self) -> float:
        return memory_mib(self.pid)["VmHWM"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def launched(env: dict[str, str], directory: Path, *, stop_at_end: bool = True) -> Iterator[LiveService]:
    """`python -m service` with env on a free loopback port, ready; stopped (SIGTERM, then SIGKILL) at the end."""
    port = free_port()
    log_path = directory / f"server-{port}.log"
    with open(log_path, "w") as log:  # NOTE: a file, not a pipe nobody reads, which would fill and block
        process = start_service(env, port, stdout=log, stderr=subprocess.STDOUT)
    service = LiveService(f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_ready(process, service.url)
    except RuntimeError as err:
        stop(process)
        raise RuntimeError(f"{err}:\n{service.log()}") from None
    try:
        yield service
    finally:
        if stop_at_end and process.poll() is None:
            stop(process)
