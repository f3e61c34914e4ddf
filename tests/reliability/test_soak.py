"""The bounded soak in CI: scripts/soak.py, as its own client process, against a real server for 15 s."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.paths import REPO_ROOT
from tests.reliability.processes import LiveService

SECONDS = 15


def test_soak_mixed_endpoints_without_a_failure_and_with_flat_memory(live_service: LiveService, tmp_path: Path) -> None:
    report = tmp_path / "soak.json"
    command = [
        sys.executable,
        str(REPO_ROOT / "scripts" / "soak.py"),
        *("--url", live_service.url, "--pid", str(live_service.pid)),
        *("--duration", str(SECONDS), "--concurrency", "64", "--max-growth-mib", "48", "--json", str(report)),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=SECONDS + 60)
    assert report.exists(), result.stdout + result.stderr
    summary = json.loads(report.read_text())
    print(f"\nsoak: {json.dumps({key: summary[key] for key in ('requests', 'failures', 'requests_per_s', 'rss_mib')})}")
    assert summary["failures"] == 0, summary["failure_kinds"]
    assert summary["requests"] > 10 * SECONDS  # it did put the server under load
    assert len(summary["by_endpoint"]) >= 9  # every endpoint of the mix was exercised
    assert summary["flat_memory"], summary["rss_mib"]
    assert result.returncode == 0, result.stderr
    assert live_service.child.poll() is None
