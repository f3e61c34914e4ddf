"""What every peer shares on the launching side: its description, its virtual environment, its process tree.

Stdlib only (plus bench.servers): a peer's own venv imports bench.peers.apps.* through PYTHONPATH, and the
bench's venv never needs any peer's packages.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from bench.servers import COMMITTED_REPOSITORY, Server, clean_env, descendants

CACHE = Path.home() / ".cache" / "mnist-bench" / "peers"  # <peer>-<version>/, one venv each, reused
APPS = Path(__file__).with_name("apps")  # the scripts, handlers and runtimes the peers run
MODEL = COMMITTED_REPOSITORY / "mnist_cnn" / "1" / "model.onnx"
INSTALL_TIMEOUT = 1800  # seconds for one peer's pip install (TorchServe pulls torch)
MARKER = ".installed"  # written last, holding the requirements: a half-made venv is made again

# Which body of bench.load.bodies() a peer is driven with, and our endpoint that takes the same request.
IMAGE_REQUEST = "/predict"  # multipart/form-data, field `file`, the 250-byte PNG
V2_REQUEST = "V2 infer (JSON, 1 image)"  # {"inputs": [{"name": "image", "shape": [1, 1, 28, 28], ...}]}


class PeerUnavailable(Exception):
    """A peer could not be installed or started; the message says why (the run reports it and goes on)."""


@dataclass(frozen=True)
class Launch:
    """How to start a peer that its launcher has laid out in a work folder."""

    command: list[str]
    ready_path: str
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)  # added to clean_env()


@dataclass(frozen=True)
class Peer:
    """A reference server: what it installs, how it is set up, which request drives it."""

    name: str  # short, for --peers and the venv folder
    title: str  # what the table calls it, with its version
    version: str  # the framework's pinned version: the venv is <name>-<version>
    requirements: tuple[str, ...]  # pip requirement specifiers, pinned
    request: str  # IMAGE_REQUEST or V2_REQUEST
    path: str  # the endpoint the request is posted to
    settings: str  # batching and threads, as the report states them
    prepare: Callable[[Path, Path, int], Launch]  # (venv, work folder, port) -> Launch
    start_timeout: float = 120.0  # seconds to the first 200 from ready_path

    @property
    def venv(self) -> Path:
        return CACHE / f"{self.name}-{self.version}"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


def ensure_venv(peer: Peer, log: Callable[[str], None]) -> Path:
    """The peer's venv, created and installed from PyPI unless a complete one is there; PeerUnavailable if pip fails."""
    marker = peer.venv / MARKER
    wanted = "\n".join(peer.requirements) + "\n"
    if marker.exists() and marker.read_text() == wanted:
        return peer.venv
    log(f"{peer.name}: creating {peer.venv} and installing {' '.join(peer.requirements)}")
    shutil.rmtree(peer.venv, ignore_errors=True)
    peer.venv.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    steps = (
        [sys.executable, "-m", "venv", str(peer.venv)],
        [str(peer.python), "-m", "pip", "install", "--quiet", *peer.requirements],
    )
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise PeerUnavailable(f"`{' '.join(step[:4])} ...` ran past {INSTALL_TIMEOUT} s") from None
        if done.returncode != 0:
            raise PeerUnavailable(f"`{' '.join(step[:4])} ...` failed: {_last_error(done.stderr)}")
    marker.write_text(wanted)
    log(f"{peer.name}: installed in {time.monotonic() - started:.0f} s")
    return peer.venv


def _last_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("WARNING: Location")]
    errors = [line for line in lines if line.startswith("ERROR")]
    return " / ".join((errors or lines)[-2:])[:400] or "no output"


def copy_app(name: str, work_dir: Path) -> Path:
    """Copy bench/peers/apps/<name> into work_dir (frameworks want their script beside their config)."""
    target = work_dir / name
    shutil.copyfile(APPS / name, target)
    return target


# ---- the peer's processes ------------------------------------------------------------------------------


class PeerServer(Server):
    """A Server whose stop ends its whole process tree: the peers fork model workers, a JVM, tritonserver."""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        tree = descendants(self.pid)  # NOTE: read before the parent goes, or its children are reparented
        super().stop()
        _end(tree[1:])


def _end(pids: list[int], timeout: float = 15.0) -> None:
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            _signal(pid, signal.SIGKILL)


def _signal(pid: int, signum: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signum)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def server_for(peer: Peer, work_dir: Path, port: int) -> PeerServer:
    """The peer laid out in work_dir, as a server on 127.0.0.1:port (not started)."""
    launch = peer.prepare(peer.venv, work_dir, port)
    env = clean_env(**launch.env)
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = f"{peer.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"  # its console scripts (torchserve, mlserver)
    return PeerServer(peer.name, launch.command, port, env, ready_path=launch.ready_path, cwd=launch.cwd)
