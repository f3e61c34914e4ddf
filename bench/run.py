"""One command: the service and the PyTorch reference side by side, plus memory and cold start.

    .venv/bin/python bench/run.py            # full run, about 5 minutes on 2 cores (--rounds 3: 8)
    .venv/bin/python bench/run.py --quick    # a smoke run, about 1 minute

Both servers run on 127.0.0.1 (one uvicorn worker each, access logs off); `wrk` drives them, alternating
service and reference cell by cell. By default the scheduler places everything (client and servers share
the machine); --pin puts the servers on CPU 0 and wrk on CPU 1 (taskset). The markdown report goes to
stdout (and --markdown FILE); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/run.py` from anywhere

from bench import servers  # noqa: E402
from bench.load import DIGIT_PNG, Body, Result, bodies, run_wrk  # noqa: E402

SERVICE_PORT, REFERENCE_PORT = 18080, 18081


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 s cells, c=1 and 32, 20k-request memory phase")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per cell (default 10; quick: 3)")
    parser.add_argument("--rounds", type=int, default=1, help="service/reference alternations per /predict cell")
    parser.add_argument("--pin", action="store_true", help="pin the servers to CPU 0 and wrk to CPU 1 (taskset)")
    parser.add_argument("--markdown", type=Path, help="also write the report to this file")
    return parser.parse_args()


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def answers_200(base_url: str, body: Body) -> bool:
    headers = {"Content-Type": body.content_type, **body.headers()}
    request = urllib.request.Request(base_url + body.path, data=body.data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status == 200
    except urllib.error.URLError:
        return False


def cold_starts(runs: int, cpus: str | None, work_dir: Path) -> list[float]:
    """Seconds from spawning `python -m service` to its first 200 from /health/ready, once per run."""
    times = []
    for _ in range(runs):
        server = servers.service(SERVICE_PORT, cpus)
        times.append(server.start(work_dir))
        server.stop()
    return times


def memory_flatness(
    first: int, total: int, cpus: str | None, wrk_cpus: str | None, work_dir: Path
) -> tuple[float, float]:
    """RSS (MiB) of a fresh service after its first `first` /predict requests, and after `total` (c=32)."""
    server = servers.service(SERVICE_PORT, cpus)
    server.start(work_dir)
    body = bodies(DIGIT_PNG.read_bytes())["/predict"]
    try:
        done = run_wrk(server.url, body, work_dir, connections=32, seconds=600, cpus=wrk_cpus, limit=first)
        after_first = server.rss_mib()
        rest = run_wrk(
            server.url, body, work_dir, connections=32, seconds=600, cpus=wrk_cpus, limit=total - done.requests
        )
        log(f"memory phase: {done.requests} + {rest.requests} requests, {rest.non_2xx + done.non_2xx} non-2xx")
        return after_first, server.rss_mib()
    finally:
        server.stop()


def workers_cells(body: Body, seconds: float, work_dir: Path) -> tuple[dict[int, Result], float]:
    """/predict at c=32 and 128 on `python -m service --workers 2` (does a second worker use the second core?),
    and the RSS of the supervisor and both workers after them, in MiB."""
    server = servers.service(SERVICE_PORT, None, workers=2)
    server.start(work_dir)
    try:
        run_wrk(server.url, body, work_dir, connections=8, seconds=2, cpus=None)  # warm both workers
        results = {c: run_wrk(server.url, body, work_dir, connections=c, seconds=seconds, cpus=None) for c in (32, 128)}
        return results, server.rss_mib()
    finally:
        server.stop()


def row(label: str, concurrency: int, result: Result) -> str:
    errors = result.non_2xx + result.socket_errors
    return (
        f"| {label} | {concurrency} | {result.rps:,.0f} | {result.p50_ms:.2f} | {result.p95_ms:.2f} | "
        f"{result.p99_ms:.2f} | {errors} |"
    )


def environment(pinned: bool) -> list[str]:
    load = os.getloadavg()
    fast = [name for name in ("httptools", "uvloop") if importlib.util.find_spec(name)]
    return [
        f"- machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}",
        f"- load average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        f"- uvicorn extras present: {', '.join(fast) or 'none (h11 + asyncio)'} (both servers use the same uvicorn)",
        "- pinning: " + ("servers on CPU 0, wrk on CPU 1 (taskset)" if pinned else "none (all share the CPUs)"),
        f"- code: git {_git_head()}",
    ]


def _git_head() -> str:
    try:
        head = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip()


def main() -> None:
    args = parse_args()
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    concurrencies = (1, 32) if args.quick else (1, 8, 32, 128)
    flat_first, flat_total = (1_000, 20_000) if args.quick else (1_000, 100_000)
    pinned = args.pin and (os.cpu_count() or 1) >= 2
    server_cpus, wrk_cpus = ("0", "1") if pinned else (None, None)
    requests = bodies(DIGIT_PNG.read_bytes())
    report = ["## Environment", "", *environment(pinned), ""]

    with tempfile.TemporaryDirectory(prefix="mnist-bench-") as tmp:
        work_dir = Path(tmp)
        log("cold starts")
        starts = cold_starts(1 if args.quick else 3, server_cpus, work_dir)

        service = servers.service(SERVICE_PORT, server_cpus)
        reference = servers.reference(REFERENCE_PORT, server_cpus)
        service.start(work_dir)
        reference_start = reference.start(work_dir)
        table = [
            "| endpoint | concurrency | req/s | p50 ms | p95 ms | p99 ms | errors |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        notes = []
        try:
            for name, server in (("service", service), ("reference", reference)):
                log(f"warming up {name}")
                run_wrk(server.url, requests["/predict"], work_dir, connections=8, seconds=2, cpus=wrk_cpus)
            predict = requests["/predict"]
            ratios = {}
            for concurrency in concurrencies:
                for round_ in range(args.rounds):
                    results = {}
                    for name, server in (("service", service), ("reference", reference)):  # alternating
                        log(f"/predict c={concurrency} {name} (round {round_ + 1})")
                        results[name] = run_wrk(
                            server.url, predict, work_dir, connections=concurrency, seconds=seconds, cpus=wrk_cpus
                        )
                        label = f"/predict, {name}" + (f" (round {round_ + 1})" if args.rounds > 1 else "")
                        table.append(row(label, concurrency, results[name]))
                    ratios.setdefault(concurrency, []).append(results["service"].rps / results["reference"].rps)
            for label, body in requests.items():
                if label == "/predict":
                    continue
                if not answers_200(service.url, body):
                    notes.append(f"- {label}: skipped, `POST {body.path}` does not answer 200 on this build.")
                    continue
                for concurrency in concurrencies:
                    log(f"{label} c={concurrency}")
                    result = run_wrk(
                        service.url, body, work_dir, connections=concurrency, seconds=seconds, cpus=wrk_cpus
                    )
                    table.append(row(f"{label}, service", concurrency, result))
            service_rss, reference_rss = service.rss_mib(), reference.rss_mib()
        finally:
            service.stop()
            reference.stop()
        if not args.quick and not pinned:
            log("/predict c=32 and 128 on the service with --workers 2")
            results, workers_rss = workers_cells(predict, seconds, work_dir)
            table += [row("/predict, service --workers 2", c, result) for c, result in results.items()]
            notes.append(
                f"- `--workers 2`: {workers_rss:.0f} MiB resident for the supervisor and both workers after its cells "
                f"(one worker: {service_rss:.0f} MiB after all of its own); each worker batches only its own requests."
            )

        log(f"memory phase: {flat_first:,} then {flat_total:,} requests on a fresh service")
        after_first, after_total = memory_flatness(flat_first, flat_total, server_cpus, wrk_cpus, work_dir)

    growth = (after_total - after_first) / after_first * 100
    report += [
        f"## Throughput and latency ({seconds:g} s per cell, wrk closed loop)",
        "",
        *table,
        "",
        *notes,
        *(
            f"- /predict service / reference at c={c}: {statistics.median(r):.1f}x"
            + (f" (median of rounds: {', '.join(f'{x:.2f}' for x in r)})" if len(r) > 1 else "")
            for c, r in ratios.items()
        ),
        "",
        "## Memory and start-up",
        "",
        f"- resident memory after the run: service {service_rss:.1f} MiB, reference {reference_rss:.1f} MiB",
        f"- memory flatness (fresh service, /predict c=32): {after_first:.1f} MiB after {flat_first:,} "
        f"requests, {after_total:.1f} MiB after {flat_total:,} ({growth:+.1f}%)",
        f"- cold start, spawn to first 200 from /health/ready: {', '.join(f'{s:.2f}' for s in starts)} s "
        f"(median {statistics.median(starts):.2f} s); the reference took {reference_start:.2f} s",
    ]
    text = "\n".join(report) + "\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
