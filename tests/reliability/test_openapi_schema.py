"""schemathesis against a real server on loopback: no 5xx, and every response matches the OpenAPI schema.

The same command as docs/reliability.md, bounded for CI (a few examples per operation); run it by hand with
`-n 200` for a longer search.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.reliability.processes import LiveService, launched
from tests.service.servers import service_env

CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES_PER_OPERATION = 8


def schemathesis_command(url: str, *extra: str) -> list[str]:
    """`schemathesis run` with every check but positive_data_acceptance (see schemathesis.toml for why), every
    operation but unload."""
    executable = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if executable is None:
        pytest.skip("schemathesis is not installed (pip install schemathesis)")
    return [
        executable,
        "--config-file",
        str(CONFIG),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",
        "--workers",
        "1",
        # NOTE: an unload of the default model leaves every later case a 404 (or a 503 from readiness, which
        # schemathesis counts as a server error); tests/service/test_control.py pins what unload answers.
        "--exclude-path-regex",
        "/unload$",
        *extra,
    ]


@pytest.fixture
def live_service(random_repository: Path, tmp_path: Path) -> Iterator[LiveService]:
    """A server of its own, not the session's: schemathesis calls the control endpoints, unload included."""
    with launched(service_env(random_repository), tmp_path) as service:
        yield service


def test_schemathesis_finds_no_server_error_or_schema_mismatch(live_service: LiveService, tmp_path: Path) -> None:
    version = httpx.get(f"{live_service.url}/v2/models/mnist_cnn").json()["versions"][0]
    command = schemathesis_command(live_service.url, "--max-examples", str(EXAMPLES_PER_OPERATION), "--seed", "1")
    result = subprocess.run(
        command,
        cwd=tmp_path,  # its cache and reports stay out of the checkout
        env={**os.environ, "MNIST_MODEL_VERSION": version},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "Tested:" in result.stdout  # it did test something
    assert httpx.get(f"{live_service.url}/health/live").status_code == 200
