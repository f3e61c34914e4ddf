"""A real `python -m service` child whose memory the tests can read (VmRSS, VmHWM from /proc/PID/status)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.service.servers import Running, running_service


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


class LiveService(Running):
    """A running server whose memory the tests read."""

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_mib(self) -> float:
        return memory_mib(self.pid)["VmRSS"]

    def peak_mib(self) -> float:
        return memory_mib(self.pid)["VmHWM"]


@contextmanager
def launched(env: dict[str, str], directory: Path) -> Iterator[LiveService]:
    """`python -m service` with env on a free loopback port, ready; stopped at the end if still up."""
    with running_service(env, directory) as running:
        yield LiveService(running.url, running.process, running.log_path)
