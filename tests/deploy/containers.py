"""The service's image run in Docker as a manifest's pod would run it: its environment, port, user, read-only root,
dropped capabilities, memory-backed emptyDir volumes and resource limits.

Only loopback is ever addressed: each container's port is published on 127.0.0.1 at a port Docker picks.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest

from tests.deploy.manifests import Manifest, plain_env
from tests.paths import REPO_ROOT

# Our own tag: others build mnist-service:latest from the same checkout at the same time.
IMAGE = "mnist-service:deploy-test"
LABEL = "mnist-deploy-test"  # on every container these tests start: `docker ps --filter label=mnist-deploy-test`
READY_TIMEOUT = 60.0  # seconds; the image was ready 1.3-3.7 s after `docker run` on 2026-12-02
BUILD_TIMEOUT = 900  # seconds; a cold build installs the serve extra from PyPI
BYTES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "": 1}


def docker() -> str:
    """The docker CLI, with the calling test skipped unless a Docker engine answers it."""
    found = shutil.which("docker")
    if not found:
        pytest.skip("docker is not installed: ../shared/tools/docker-engine installs and starts an engine")
    info = subprocess.run([found, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if info.returncode != 0:
        pytest.skip(f"no Docker engine answers ({info.stderr.strip()}): start one with ../shared/tools/docker-engine")
    return found


def build_image() -> str:
    """Build the Dockerfile's service stage as IMAGE (quick when BuildKit's cache is up to date)."""
    command = [docker(), "build", "--target", "service", "-t", IMAGE, str(REPO_ROOT)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return IMAGE


def _bytes(quantity: str) -> int:
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi|)", quantity)
    assert match, f"quantity {quantity!r}: only plain, Ki, Mi and Gi amounts are understood here"
    return int(match[1]) * BYTES[match[2]]


def _cpus(quantity: str) -> str:
    return str(int(quantity[:-1]) / 1000) if quantity.endswith("m") else quantity


def run_flags(pod: Manifest, container: Manifest) -> list[str]:
    """`docker run` flags for what the pod spec asks of the container (environment and ports aside)."""
    context = pod.get("securityContext", {}) | container.get("securityContext", {})  # the container's win
    flags = []
    if "runAsUser" in context:
        flags += ["--user", f"{context['runAsUser']}:{context.get('runAsGroup', context['runAsUser'])}"]
    if context.get("readOnlyRootFilesystem"):
        flags.append("--read-only")
    if "ALL" in context.get("capabilities", {}).get("drop", []):
        flags += ["--cap-drop", "ALL"]
    if context.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    # Docker applies its default seccomp profile unless told otherwise: RuntimeDefault needs no flag.
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        empty_dir = volumes[mount["name"]].get("emptyDir")
        assert empty_dir is not None, f"volume {mount['name']}: only emptyDir volumes are run here"
        size = f":size={_bytes(empty_dir['sizeLimit'])}" if "sizeLimit" in empty_dir else ""
        flags += ["--tmpfs", mount["mountPath"] + size]
    limits = container.get("resources", {}).get("limits", {})
    if "memory" in limits:
        flags += ["--memory", str(_bytes(limits["memory"]))]
    if "cpu" in limits:
        flags += ["--cpus", _cpus(limits["cpu"])]
    return flags


@dataclass(frozen=True)
class Container:
    """A running container and the loopback URL of its one published port."""

    id: str
    url: str

    def inspect(self, template: str) -> str:
        return subprocess.run(
            [docker(), "inspect", "-f", template, self.id], capture_output=True, text=True, check=True
        ).stdout.strip()

    def running(self) -> bool:
        return self.inspect("{{.State.Running}}") == "true"

    def logs(self) -> str:
        result = subprocess.run([docker(), "logs", "--tail", "60", self.id], capture_output=True, text=True)
        return result.stdout + result.stderr


def _published(container_id: str, port: int) -> str:
    out = subprocess.run(
        [docker(), "port", container_id, f"{port}/tcp"], capture_output=True, text=True, check=True
    ).stdout
    host_port = out.splitlines()[0].rsplit(":", 1)[1]  # e.g. 127.0.0.1:49153
    return f"http://127.0.0.1:{host_port}"


def wait_until_answers(container: Container, path: str, timeout: float = READY_TIMEOUT) -> float:
    """Seconds until GET path answers 200; fails with the container's log if it exits or the deadline passes."""
    start = time.monotonic()
    with httpx.Client(base_url=container.url, timeout=2) as client:
        while time.monotonic() - start < timeout:
            try:
                if client.get(path).status_code == 200:
                    return time.monotonic() - start
            except httpx.TransportError:
                pass
            if not container.running():
                pytest.fail(f"the container exited before {path} answered 200:\n{container.logs()}")
            time.sleep(0.05)  # poll interval: the loop ends as soon as the server answers
    pytest.fail(f"{path} did not answer 200 within {timeout:.0f} s:\n{container.logs()}")


@contextmanager
def started(image: str, pod: Manifest, container: Manifest, ready_path: str) -> Iterator[Container]:
    """The image run with the container's plain environment, its (one) container port published on loopback and
    run_flags(); yielded once ready_path answers 200, removed afterwards whatever happened."""
    (port,) = [entry["containerPort"] for entry in container["ports"]]
    env = [flag for name, value in plain_env(container).items() for flag in ("-e", f"{name}={value}")]
    command = [docker(), "run", "-d", "--label", LABEL, *run_flags(pod, container), "-p", f"127.0.0.1::{port}"]
    result = subprocess.run([*command, *env, image], capture_output=True, text=True)
    assert result.returncode == 0, f"docker run failed: {result.stderr}"
    container_id = result.stdout.strip()
    try:
        running = Container(container_id, _published(container_id, port))
        wait_until_answers(running, ready_path)
        yield running
    finally:
        subprocess.run([docker(), "rm", "-f", container_id], capture_output=True)


def image_user(image: str) -> tuple[int, int]:
    """(uid, gid) the image's own USER runs as, with no --user given."""
    command = [
        docker(),
        "run",
        "--rm",
        "--entrypoint",
        "python",
        image,
        "-c",
        "import os; print(os.getuid(), os.getgid())",
    ]
    uid, gid = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
    return int(uid), int(gid)
