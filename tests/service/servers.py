"""`python -m service` as a child process on a free loopback port, through bench/servers.py's launcher."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.servers import REPO_ROOT, Server, free_port, service_command, service_env, stop, wait_ready

__all__ = ["REPO_ROOT", "Running", "free_port", "running_service", "service_env", "start_service", "stop", "wait_ready"]

Running = Server  # a started, ready server: .url, .process, .log()


def start_service(env: dict[str, str], port: int, **popen: Any) -> subprocess.Popen:
    """`python -m service` on 127.0.0.1:port, started from the repository root, not waited for."""
    return subprocess.Popen(service_command(port), env=env, cwd=REPO_ROOT, **popen)


@contextmanager
def running_service(env: dict[str, str], directory: Path) -> Iterator[Server]:
    """`python -m service` with env on a free loopback port, ready to serve, its output in a file in directory;
    stopped at the end if still up. RuntimeError with the server's output if it exits or never gets ready."""
    with Server.for_service(env).running(directory) as server:
        yield server
