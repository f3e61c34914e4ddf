"""`python -m service` as a child process, through bench/servers.py's launcher: its environment, a free port,
a start that is not waited for (a running, ready one is tests/reliability/processes.py's `launched`)."""

from __future__ import annotations

import subprocess
from typing import Any

from bench.servers import REPO_ROOT, free_port, service_command, service_env

__all__ = ["free_port", "service_env", "start_service"]


def start_service(env: dict[str, str], port: int, **popen: Any) -> subprocess.Popen:
    """`python -m service` on 127.0.0.1:port, started from the repository root, not waited for."""
    return subprocess.Popen(service_command(port), env=env, cwd=REPO_ROOT, **popen)
