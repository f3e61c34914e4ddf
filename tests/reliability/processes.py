"""A real `python -m service` child that the tests signal, wait for and read from /proc: its memory (VmRSS,
VmHWM from /proc/PID/status) and its CPU time (/proc/PID/stat)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.servers import Server, cpu_seconds, memory_mib

__all__ = ["LiveService", "cpu_seconds", "launched", "memory_mib", "reset_peak"]


def reset_peak(pid: int) -> bool:
    """Start VmHWM over from the current RSS (Linux >= 4.0); False where the kernel refuses."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class LiveService(Server):
    """A running server whose memory the tests read; one process (no --workers), so its peak is all of it."""

    @property
    def child(self) -> subprocess.Popen:
        """The server's process, to signal and wait for; AssertionError before it is started."""
        assert self.process is not None, "not started"
        return self.process

    def peak_mib(self) -> float:
        return memory_mib(self.pid)["VmHWM"]


@contextmanager
def launched(env: dict[str, str], directory: Path) -> Iterator[LiveService]:
    """`python -m service` with env on a free loopback port, ready; stopped at the end if still up."""
    with LiveService.for_service(env).running(directory) as service:
        yield service
