"""A real `python -m service` child whose memory the tests read (VmRSS, VmHWM from /proc/PID/status)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.servers import Server, memory_mib

__all__ = ["LiveService", "launched", "memory_mib", "reset_peak"]


def reset_peak(pid: int) -> bool:
    """Start VmHWM over from the current RSS (Linux >= 4.0); False where the kernel refuses."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class LiveService(Server):
    """A running server whose memory the tests read; one process (no --workers), so its peak is all of it."""

    def peak_mib(self) -> float:
        return memory_mib(self.pid)["VmHWM"]


@contextmanager
def launched(env: dict[str, str], directory: Path) -> Iterator[LiveService]:
    """`python -m service` with env on a free loopback port, ready; stopped at the end if still up."""
    with LiveService.for_service(env).running(directory) as service:
        yield service
