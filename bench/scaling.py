"""The figures docs/scaling.md plans from: what one core and one replica of this service serve, per endpoint
and model, what a replica holds in memory, and how long it takes to start and to load a model.

    .venv/bin/python -m bench.scaling                       # about 4 minutes on this machine
    .venv/bin/python -m bench.scaling --markdown out.md

One core: `python -m service` (one worker) pinned to CPU 0 with taskset, wrk pinned to CPU 1, every endpoint
of bench/profile.py for both models at c=32, `--seconds` per cell. Two workers: `--workers 2` unpinned (the
machine's both cores, wrk sharing them) on /predict and V2 JSON. Start-up: spawn to the first 200 from
/health/ready, three times; model load: mnist_model_load_duration_seconds from /metrics (checksum, checks,
session, warm-up, per version).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import servers  # noqa: E402
from bench.load import Result, run_wrk  # noqa: E402
from bench.profile import paths  # noqa: E402

PORT = 18090
LOAD_SECONDS = re.compile(r'^mnist_model_load_duration_seconds_(sum|count)\{model="([^"]+)"\} (\S+)$')


def load_seconds(url: str) -> dict[str, float]:
    """Mean seconds per version load, by model, from the server's own histogram."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    sums: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        if match := LOAD_SECONDS.match(line):
            sums.setdefault(match[2], {})[match[1]] = float(match[3])
    return {model: values["sum"] / values["count"] for model, values in sums.items() if values.get("count")}


def cell(server: servers.Server, name: str, seconds: float, connections: int, wrk_cpus: str | None) -> Result:
    body = paths([name.rsplit(" [", 1)[0]])[name]
    with tempfile.TemporaryDirectory() as tmp:
        run_wrk(server.url, body, Path(tmp), connections=8, seconds=1, cpus=wrk_cpus)  # warm
        return run_wrk(server.url, body, Path(tmp), connections=connections, seconds=seconds, cpus=wrk_cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        starts = []
        for _ in range(3):
            server = servers.service(PORT, None)
            starts.append(server.start(work))
            loads = load_seconds(server.url)
            server.stop()
        lines += ["| endpoint [model] | req/s, one core | p50 ms | p99 ms |", "| --- | ---: | ---: | ---: |"]
        pinned = servers.service(PORT, "0")
        with pinned.running(work):
            for name in paths(None):
                result = cell(pinned, name, args.seconds, args.concurrency, "1")
                lines.append(f"| {name} | {result.rps:,.0f} | {result.p50_ms:.1f} | {result.p99_ms:.1f} |")
                print(lines[-1], file=sys.stderr, flush=True)
            one_rss = pinned.rss_mib()
        lines += ["", "| endpoint [model] | req/s, --workers 2 | p50 ms | p99 ms |", "| --- | ---: | ---: | ---: |"]
        two = servers.service(PORT, None, workers=2)
        with two.running(work):
            for name in ("/predict [mnist_cnn]", "V2 infer (JSON, 1 image) [mnist_cnn]"):
                result = cell(two, name, args.seconds, 2 * args.concurrency, None)
                lines.append(f"| {name} | {result.rps:,.0f} | {result.p50_ms:.1f} | {result.p99_ms:.1f} |")
            two_rss = two.rss_mib()
    lines += [
        "",
        f"- c={args.concurrency} per core ({2 * args.concurrency} for two workers), {args.seconds:g} s per cell",
        f"- resident memory after the cells: one worker {one_rss:.0f} MiB, two workers {two_rss:.0f} MiB (whole tree)",
        f"- start-up, spawn to ready: {', '.join(f'{s:.2f}' for s in starts)} s"
        f" (median {statistics.median(starts):.2f})",
        "- model load (checks, session, warm-up), mean per version: "
        + ", ".join(f"{model} {seconds * 1000:.0f} ms" for model, seconds in sorted(loads.items())),
    ]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
