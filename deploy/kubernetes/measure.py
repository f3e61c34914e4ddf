"""Measure what deploy/kubernetes/base/deployment.yaml sizes: the image run in Docker as the Deployment's container
(its environment, user, read-only root, /tmp and resource limits), timed to ready, its memory and CPU read with
`docker stats` idle, under wrk load and under a burst of the largest images, and `docker stop` timed.

    .venv/bin/python -m deploy.kubernetes.measure              # from the checkout; needs Docker, kubectl, wrk
    .venv/bin/python -m deploy.kubernetes.measure --no-limits

docs/kubernetes.md quotes its output. Only loopback is addressed: the container's port is published on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import httpx

from bench.load import DIGIT_PNG, bodies, run_wrk
from tests.deploy.containers import Container, build_image, started
from tests.deploy.manifests import KUSTOMIZATIONS, one, pod_spec, render
from tests.reliability.payloads import big_seven

T = TypeVar("T")
LOADS = [
    ("/predict", 1, 5),
    ("/predict", 32, 10),
    ("V2 infer (JSON, 1 image)", 32, 10),
    ("/predict/batch (8 files)", 32, 10),
]


def stats(container: Container) -> tuple[float, float]:
    """(memory MiB, CPU % of one core) from one `docker stats` sample (it takes about a second)."""
    out = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{json .}}", container.id],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    sample = json.loads(out)
    used = sample["MemUsage"].split("/")[0].strip()
    mib = float(used[:-3]) * (1024 if used.endswith("GiB") else 1)
    return mib, float(sample["CPUPerc"].rstrip("%"))


def sampled(container: Container, work: Callable[[], T]) -> tuple[T, list[tuple[float, float]]]:
    """work()'s result and the `docker stats` samples taken while it ran."""
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(stats(container))

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        return work(), samples
    finally:
        done.set()
        thread.join()


def probe_latencies(url: str, stop: threading.Event, out: list[float]) -> None:
    """Milliseconds of GET /health/live and /health/ready, asked five times a second until stop."""
    with httpx.Client(base_url=url, timeout=10) as client:
        while not stop.is_set():
            for path in ("/health/live", "/health/ready"):
                start = time.perf_counter()
                assert client.get(path).status_code == 200
                out.append((time.perf_counter() - start) * 1000)
            stop.wait(0.2)


def queue_totals(url: str) -> tuple[float, float]:
    """(sum, count) of mnist_inference_queue_seconds over every model version."""
    total = count = 0.0
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith("mnist_inference_queue_seconds_sum{"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith("mnist_inference_queue_seconds_count{"):
            count += float(line.rsplit(" ", 1)[1])
    return total, count


def under_load(container: Container, work_dir: Path) -> None:
    requests = bodies(DIGIT_PNG.read_bytes())
    for name, connections, seconds in LOADS:
        before, stop, probes = queue_totals(container.url), threading.Event(), []
        prober = threading.Thread(target=probe_latencies, args=(container.url, stop, probes))
        prober.start()
        drive = functools.partial(
            run_wrk, container.url, requests[name], work_dir, connections=connections, seconds=seconds, cpus=None
        )
        result, samples = sampled(container, drive)
        stop.set()
        prober.join()
        after = queue_totals(container.url)
        queue_ms = 1000 * (after[0] - before[0]) / max(after[1] - before[1], 1)
        memory, cpu = [m for m, _ in samples], [c for _, c in samples]
        print(
            f"{name} c={connections}: {result.rps:.0f} req/s, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
            f"{result.non_2xx} not 2xx, {result.socket_errors} socket errors; memory max {max(memory):.1f} MiB; "
            f"CPU max {max(cpu):.0f}%, median {statistics.median(cpu):.0f}%; health probes max {max(probes):.1f} ms; "
            f"mean queue {queue_ms:.3f} ms"
        )


def burst(container: Container, count: int) -> None:
    """count concurrent 4096x4096 16-bit PNGs; the cgroup's peak (v1: memory.max_usage_in_bytes, cache included)."""
    full_id = container.inspect("{{.Id}}")
    cgroup = Path(f"/sys/fs/cgroup/memory/docker/{full_id}")
    (cgroup / "memory.max_usage_in_bytes").write_text("0")
    image = big_seven(4096, "I;16")

    def post_all() -> set[int]:
        with httpx.Client(base_url=container.url, timeout=120) as client, ThreadPoolExecutor(count) as pool:
            files = {"file": ("big.png", image)}
            return set(pool.map(lambda _: client.post("/predict", files=files).status_code, range(count)))

    statuses, _ = sampled(container, post_all)
    peak = int((cgroup / "memory.max_usage_in_bytes").read_text()) / 2**20
    print(
        f"burst of {count} 4096x4096 16-bit PNGs: statuses {statuses}, cgroup peak {peak:.0f} MiB, after "
        f"{stats(container)[0]:.0f} MiB, OOM-killed {container.inspect('{{.State.OOMKilled}}')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-limits", action="store_true", help="run without the manifest's resource limits")
    parser.add_argument("--starts", type=int, default=5, help="times to start and stop the container idle")
    args = parser.parse_args()
    deployment = one(render(KUSTOMIZATIONS["base"]), "Deployment")
    pod = pod_spec(deployment)
    (container_spec,) = pod["containers"]
    if args.no_limits:
        container_spec["resources"].pop("limits")
    image = build_image()
    limits = container_spec["resources"].get("limits", "none")
    print(f"load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}; limits {limits}")
    for _ in range(args.starts):
        start = time.monotonic()
        with started(image, pod, container_spec, "/health/ready") as container:
            ready = time.monotonic() - start
            stop = time.monotonic()
            subprocess.run(["docker", "stop", "-t", "30", container.id], check=True, capture_output=True)
            stopped = time.monotonic() - stop
            print(f"docker run to 200 from /health/ready: {ready:.2f} s; docker stop (idle): {stopped:.2f} s")
    with started(image, pod, container_spec, "/health/ready") as container, tempfile.TemporaryDirectory() as work:
        time.sleep(5)  # settle after start-up before reading idle memory
        print(f"idle: {stats(container)[0]:.1f} MiB")
        under_load(container, Path(work))
        for count in (8, 16):
            burst(container, count)
        load = threading.Thread(
            target=run_wrk,
            args=(container.url, bodies(DIGIT_PNG.read_bytes())["/predict"], Path(work)),
            kwargs={"connections": 32, "seconds": 6, "cpus": None},
        )
        load.start()
        time.sleep(2)  # let the load reach every connection
        stop = time.monotonic()
        subprocess.run(["docker", "stop", "-t", "30", container.id], check=True, capture_output=True)
        print(f"docker stop under 32 connections of /predict: {time.monotonic() - stop:.2f} s")
        load.join()


if __name__ == "__main__":
    main()
