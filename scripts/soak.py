"""Soak test: a mix of every endpoint at steady concurrency for a fixed time, on loopback only.

    .venv/bin/python scripts/soak.py                         # starts its own server: 64 clients for 5 minutes
    .venv/bin/python scripts/soak.py --duration 20 --concurrency 16
    .venv/bin/python scripts/soak.py --url http://127.0.0.1:8000 --pid 1234   # a server you started

Every request has an expected status (a deliberately broken image expects 415); anything else, or a transport
error, is a failure. The server's RSS (its process and any workers, from /proc) is sampled once a second: after
the warm-up it must stay flat. Exit status 0 only with zero failures and flat memory. Prints a summary (and
--json writes it).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import ipaddress
import json
import os
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python scripts/soak.py` from anywhere, as bench/run.py

from bench.servers import COMMITTED_REPOSITORY, Server, service_env, tree_rss_mib  # noqa: E402


@dataclass(frozen=True)
class Call:
    """One kind of request in the mix: what to send, the status it must get, and how often (weight)."""

    name: str
    method: str
    path: str
    expect: int
    weight: int
    kwargs: Callable[[], dict[str, Any]] = lambda: {}


@dataclass
class Tally:
    """What the clients saw."""

    counts: Counter = field(default_factory=Counter)  # name -> requests
    failures: Counter = field(default_factory=Counter)  # "name: what went wrong" -> count
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))


# ---- the requests ------------------------------------------------------------------------------------


def draw_digit(size: int, seed: int) -> bytes:
    """A PNG of a hand-drawn-looking 7 (or 1), dark on light, slightly different for each seed."""
    rng = random.Random(seed)
    image = Image.new("L", (size, size), 255)
    s = size / 140
    jitter = [rng.uniform(-8, 8) * s for _ in range(6)]
    if seed % 2:
        points = [
            (35 * s + jitter[0], 30 * s + jitter[1]),
            (105 * s + jitter[2], 30 * s),
            (60 * s, 115 * s + jitter[3]),
        ]
    else:
        points = [(70 * s + jitter[4], 20 * s), (70 * s + jitter[5], 120 * s)]
    ImageDraw.Draw(image).line(points, fill=0, width=max(1, round(12 * s)))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def build_mix(with_v2: bool) -> list[Call]:
    digits = [draw_digit(size, seed) for seed, size in enumerate((28, 140, 280, 64, 200, 100))]

    def one_file() -> dict[str, Any]:
        return {"files": {"file": ("digit.png", random.choice(digits), "image/png")}}

    def batch() -> dict[str, Any]:
        return {"files": [("files", (f"{i}.png", random.choice(digits), "image/png")) for i in range(8)]}

    v2 = {"inputs": [{"name": "image", "shape": [1, 784], "datatype": "UINT8", "data": [0] * 392 + [255] * 392}]}
    mix = [
        Call("predict", "POST", "/predict", 200, 6, one_file),
        Call("predict raw", "POST", "/predict", 200, 2, lambda: {"content": random.choice(digits), "headers": RAW}),
        Call("predict/batch of 8", "POST", "/predict/batch", 200, 2, batch),
        Call("feature-maps compact", "POST", "/feature-maps?format=compact", 200, 3, one_file),
        Call("feature-maps/conv1.png", "POST", "/feature-maps/conv1.png", 200, 2, one_file),
        Call("broken image (415)", "POST", "/predict", 415, 1, lambda: {"content": b"\x89PNG junk", "headers": RAW}),
        Call("health/ready", "GET", "/health/ready", 200, 2),
        Call("health/live", "GET", "/health/live", 200, 1),
        Call("metrics", "GET", "/metrics", 200, 1),
    ]
    if with_v2:
        mix.append(Call("v2 infer", "POST", "/v2/models/mnist_cnn/infer", 200, 3, lambda: {"json": v2}))
    return mix


RAW = {"Content-Type": "image/png"}


# ---- clients and memory ------------------------------------------------------------------------------


async def client_loop(http: httpx.AsyncClient, mix: list[Call], deadline: float, tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    weights = [call.weight for call in mix]
    while time.monotonic() < deadline:
        call = rng.choices(mix, weights)[0]
        start = time.perf_counter()
        try:
            response = await http.request(call.method, call.path, **call.kwargs())
            await response.aread()
        except httpx.HTTPError as err:
            tally.failures[f"{call.name}: {type(err).__name__}"] += 1
            continue
        finally:
            tally.counts[call.name] += 1
        tally.latencies[call.name].append(time.perf_counter() - start)
        if response.status_code != call.expect:
            tally.failures[f"{call.name}: {response.status_code} {response.text[:80]}"] += 1


async def sample_rss(pid: int, deadline: float, samples: list[tuple[float, float]], every: float) -> None:
    start = time.monotonic()
    while time.monotonic() < deadline:
        samples.append((time.monotonic() - start, tree_rss_mib(pid)))
        await asyncio.sleep(every)
    samples.append((time.monotonic() - start, tree_rss_mib(pid)))


async def soak(url: str, pid: int | None, duration: float, concurrency: int, seed: int) -> dict[str, Any]:
    # NOTE: keep idle connections for less than uvicorn's 5 s keep-alive: with httpx's default of 5 s too, a
    # request sent on a connection the server is closing at that instant fails with ReadError (seen once in CI).
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=2.0)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        with_v2 = (await http.get("/v2")).status_code == 200
        mix = build_mix(with_v2)
        tally, samples = Tally(), []
        rss_before = tree_rss_mib(pid) if pid else None
        started = time.monotonic()
        deadline = started + duration
        tasks = [client_loop(http, mix, deadline, tally, seed + i) for i in range(concurrency)]
        if pid:
            tasks.append(sample_rss(pid, deadline, samples, every=max(0.25, min(1.0, duration / 60))))
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - started
    return summarise(tally, samples, rss_before, elapsed, concurrency)


def summarise(
    tally: Tally, samples: list[tuple[float, float]], rss_before: float | None, elapsed: float, concurrency: int
) -> dict[str, Any]:
    requests = sum(tally.counts.values())
    every = [latency for values in tally.latencies.values() for latency in values]
    summary: dict[str, Any] = {
        "duration_s": round(elapsed, 1),
        "concurrency": concurrency,
        "requests": requests,
        "failures": sum(tally.failures.values()),
        "failure_kinds": dict(tally.failures.most_common(10)),
        "requests_per_s": round(requests / elapsed, 1),
        "latency_ms": {"p50": _ms(every, 0.5), "p99": _ms(every, 0.99), "max": _ms(every, 1.0)},
        "by_endpoint": {
            name: {"requests": tally.counts[name], "p50_ms": _ms(values, 0.5), "p99_ms": _ms(values, 0.99)}
            for name, values in sorted(tally.latencies.items())
        },
    }
    if samples:
        summary["rss_mib"] = rss_summary(samples, rss_before)
    return summary


def _ms(values: list[float], quantile: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(quantile * len(ordered)))], 1)


def rss_summary(samples: list[tuple[float, float]], before: float | None) -> dict[str, Any]:
    """RSS before, after the warm-up (the first 20% of the run), at the end, its peak, and the growth in between."""
    total = samples[-1][0]
    warm = [rss for t, rss in samples if total * 0.2 <= t <= total * 0.3] or [samples[len(samples) // 5][1]]
    last = [rss for t, rss in samples if t >= total * 0.9] or [samples[-1][1]]
    after_warmup, at_end = statistics.median(warm), statistics.median(last)
    return {
        "before": round(before, 1) if before is not None else None,
        "after_warmup": round(after_warmup, 1),
        "end": round(at_end, 1),
        "peak": round(max(rss for _, rss in samples), 1),
        "growth_after_warmup": round(at_end - after_warmup, 1),
        "samples": len(samples),
    }


# ---- a server of our own -----------------------------------------------------------------------------


def check_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        sys.exit(f"soak: refusing {url}: only loopback addresses (127.0.0.0/8, ::1, localhost) are soaked")


def start_server(repository: Path) -> Server:
    """`python -m service` serving a model repository on a free loopback port, ready; its output in $TMPDIR."""
    server = Server.for_service(service_env(repository, MNIST_LOG_LEVEL="warning"), name="soak-server")
    try:
        server.start(Path(os.environ.get("TMPDIR", "/tmp")))
    except RuntimeError as err:
        sys.exit(f"soak: {err}")
    return server


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/soak.py",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--url", help="a running server on loopback (default: start one)")
    parser.add_argument("--pid", type=int, help="its process id, for the memory samples")
    parser.add_argument("--repository", type=Path, default=COMMITTED_REPOSITORY, help="model repository to serve")
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load")
    parser.add_argument("--concurrency", type=int, default=64, help="clients sending at once")
    parser.add_argument("--max-growth-mib", type=float, default=32.0, help="RSS growth after warm-up that fails")
    parser.add_argument("--seed", type=int, default=0, help="seed of the request mix")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    server = None
    if args.url:
        check_loopback(args.url)
        url, pid = args.url.rstrip("/"), args.pid
    else:
        server = start_server(args.repository)
        url, pid = server.url, server.pid
    try:
        summary = asyncio.run(soak(url, pid, args.duration, args.concurrency, args.seed))
    finally:
        if server is not None:
            server.stop()
    summary["flat_memory"] = (
        "rss_mib" not in summary or summary["rss_mib"]["growth_after_warmup"] <= args.max_growth_mib
    )
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0 if summary["failures"] == 0 and summary["flat_memory"] else 1


if __name__ == "__main__":
    sys.exit(main())
