"""Our service beside real model servers, each serving the committed classic model: one Markdown table.

    .venv/bin/python -m bench.peers                                   # every peer, 3 rounds of 10 s cells
    .venv/bin/python -m bench.peers --peers triton,torchserve --rounds 1 --seconds 3 --markdown /tmp/peers.md

One server runs at a time on 127.0.0.1, rounds alternate the servers, wrk drives each at every concurrency;
the table gives the median req/s and p99 of the rounds and the server's resident memory (its whole process
tree). A peer that cannot be installed or started is reported with the reason and skipped. Peers' venvs live
in ~/.cache/mnist-bench/peers/ (made on first use, minutes each). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.load import DIGIT_PNG, Body, Result, bodies, run_wrk
from bench.peers import bentoml, kserve, litserve, mlserver, torchserve, triton
from bench.peers.common import IMAGE_REQUEST, V2_REQUEST, Peer, PeerUnavailable, ensure_venv, server_for
from bench.servers import COMMITTED_REPOSITORY, Server, free_port, service_env

PEERS: dict[str, Peer] = {
    peer.name: peer for peer in (triton.PEER, torchserve.PEER, kserve.PEER, mlserver.PEER, litserve.PEER, bentoml.PEER)
}
EXPECTED_DIGIT = 7  # bench/digit.png is MNIST test image 0
ANSWER_TIMEOUT = 60.0  # seconds a just-ready server may take to answer its request with 200
WARMUP_SECONDS = 2.0


@dataclass(frozen=True)
class Target:
    """One server of the table and the requests it is driven with: (row label, request label, body)."""

    name: str
    server: Callable[[Path, int], Server]  # (work folder, port) -> a server not yet started
    endpoints: list[tuple[str, str, Body]]
    start_timeout: float = 60.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated (default {','.join(PEERS)})")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per wrk cell (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of all the servers (default 3)")
    parser.add_argument("--concurrency", default="1,32,128", help="wrk connections per cell (default 1,32,128)")
    parser.add_argument("--markdown", type=Path, help="also write the report to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (configs, logs) (default: off)")
    return parser.parse_args()


def log(message: str) -> None:
    print(f"[peers {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def our_service(requests: dict[str, Body]) -> Target:
    def server(work_dir: Path, port: int) -> Server:
        env = service_env(COMMITTED_REPOSITORY)
        return Server.for_service(env, port, "--workers", "1", "--log-level", "warning", name="service")

    endpoints = [
        ("our service, /predict", "multipart PNG", requests[IMAGE_REQUEST]),
        ("our service, V2 infer", "V2 JSON", requests[V2_REQUEST]),
        ("our service, V2 infer", "V2 binary tensor", requests["V2 infer (binary, 1 image)"]),
    ]
    return Target("service", server, endpoints)


def peer_target(peer: Peer, requests: dict[str, Body]) -> Target:
    body = requests[peer.request]
    kind = "multipart PNG" if peer.request == IMAGE_REQUEST else "V2 JSON"
    endpoint = (peer.title, kind, Body(peer.path, body.content_type, body.data))
    return Target(peer.name, lambda work_dir, port: server_for(peer, work_dir, port), [endpoint], peer.start_timeout)


def answered_digit(base_url: str, body: Body) -> int:
    """POST body until it answers 200 (ANSWER_TIMEOUT), and read the digit from /predict or V2 JSON."""
    headers = {"Content-Type": body.content_type, **body.headers()}
    request = urllib.request.Request(base_url + body.path, data=body.data, headers=headers, method="POST")
    deadline, last = time.monotonic() + ANSWER_TIMEOUT, "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                reply = json.loads(response.read())
                break
        except urllib.error.HTTPError as err:
            last = f"HTTP {err.code}: {err.read()[:200]!r}"
        except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
            last = str(err)
        time.sleep(0.5)
    else:
        raise PeerUnavailable(f"POST {body.path} never answered 200 ({last})")
    try:
        probabilities = _probabilities(reply)
    except (KeyError, IndexError, TypeError, StopIteration):
        raise PeerUnavailable(f"POST {body.path} answered without probabilities: {str(reply)[:200]}") from None
    return max(range(len(probabilities)), key=probabilities.__getitem__)


def _probabilities(reply: Any) -> list[float]:
    if isinstance(reply, list):  # a batchable BentoML API answers a list per request: here, of one
        reply = reply[0]
    if "outputs" in reply:  # V2: {"outputs": [{"name": "probabilities", "data": [...]}]}
        return next(out["data"] for out in reply["outputs"] if out["name"] == "probabilities")
    return reply["probabilities"]


@dataclass
class Tally:
    """Every round's results of every (row, request), and each server's memory after its rounds."""

    cells: dict[tuple[str, str], dict[int, list[Result]]]
    rss: dict[str, list[float]]
    starts: dict[str, list[float]]
    metadata: dict[str, str]  # a V2 server's GET /v2 answer: name and version


def run_round(target: Target, work_dir: Path, concurrencies: list[int], seconds: float, tally: Tally) -> None:
    """Start the target, check its answer, warm it, drive every endpoint at every concurrency, stop it."""
    work_dir.mkdir()
    server = target.server(work_dir, free_port())
    tally.starts[target.name].append(server.start(work_dir, timeout=target.start_timeout))
    try:
        for row, kind, body in target.endpoints:
            try:
                digit = answered_digit(server.url, body)
            except PeerUnavailable as err:
                raise PeerUnavailable(f"{err}; its log: {_last_error(server.log())}") from None
            if digit != EXPECTED_DIGIT:
                raise PeerUnavailable(f"POST {body.path} answered {digit}, not {EXPECTED_DIGIT}")
            if kind == "V2 JSON":
                tally.metadata[target.name] = server_metadata(server.url)
            run_wrk(server.url, body, work_dir, connections=8, seconds=WARMUP_SECONDS, cpus=None)
            for concurrency in concurrencies:
                log(f"{row} c={concurrency}")
                result = run_wrk(server.url, body, work_dir, connections=concurrency, seconds=seconds, cpus=None)
                tally.cells[(row, kind)].setdefault(concurrency, []).append(result)
        tally.rss[target.name].append(server.rss_mib())
    finally:
        server.stop()


def server_metadata(base_url: str) -> str:
    """A V2 server's own name and version (GET /v2), e.g. "triton 2.59.0"; "" if it does not say."""
    try:
        with urllib.request.urlopen(base_url + "/v2", timeout=5) as response:
            reply = json.loads(response.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return ""
    return f"{reply.get('name', '?')} {reply.get('version', '?')}"


def _last_error(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if "error" in line.lower() or "exception" in line.lower()]
    return lines[-1][:300] if lines else "nothing that reads as an error"


def _reason(err: Exception) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return " / ".join(lines[:1] + lines[-3:] if len(lines) > 4 else lines)[:600]


def table(tally: Tally, concurrencies: list[int], targets: list[Target]) -> list[str]:
    head = " | ".join([*(f"req/s c={c}" for c in concurrencies), *(f"p99 ms c={c}" for c in concurrencies)])
    lines = [
        f"| server | request | {head} | errors | RSS MiB | start s |",
        "| --- | --- |" + " ---: |" * (2 * len(concurrencies) + 3),
    ]
    for target in targets:
        for row, kind, _ in target.endpoints:
            cells = tally.cells.get((row, kind))
            if not cells:
                continue
            rps = [f"{statistics.median(r.rps for r in cells[c]):,.0f}" if c in cells else "-" for c in concurrencies]
            p99 = [f"{statistics.median(r.p99_ms for r in cells[c]):.1f}" if c in cells else "-" for c in concurrencies]
            errors = sum(r.non_2xx + r.socket_errors for results in cells.values() for r in results)
            rss = f"{statistics.median(tally.rss[target.name]):.0f}" if tally.rss[target.name] else "-"
            start = f"{statistics.median(tally.starts[target.name]):.1f}" if tally.starts[target.name] else "-"
            lines.append(f"| {row} | {kind} | {' | '.join(rps + p99)} | {errors} | {rss} | {start} |")
    return lines


def main() -> None:
    args = parse_args()
    names = [name.strip() for name in args.peers.split(",") if name.strip()]
    unknown = [name for name in names if name not in PEERS]
    if unknown:
        raise SystemExit(f"bench.peers: unknown peer(s) {', '.join(unknown)}; choose from {', '.join(PEERS)}")
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    requests = bodies(DIGIT_PNG.read_bytes())
    began, load_before = time.monotonic(), os.getloadavg()
    failures: dict[str, str] = {}

    peers = []
    for name in names:
        try:
            ensure_venv(PEERS[name], log)
            peers.append(PEERS[name])
        except PeerUnavailable as err:
            failures[PEERS[name].title] = f"install: {err}"
            log(f"{name}: skipped, {err}")
    installed = time.monotonic()

    targets = [our_service(requests), *(peer_target(peer, requests) for peer in peers)]
    titles = {peer.name: peer.title for peer in peers} | {"service": "our service"}
    tally = Tally(defaultdict(dict), defaultdict(list), defaultdict(list), {})
    work_root = Path(tempfile.mkdtemp(prefix="mnist-peers-"))
    try:
        live = list(targets)
        for round_ in range(args.rounds):
            for target in list(live):
                log(f"round {round_ + 1}/{args.rounds}: {target.name}")
                try:
                    run_round(target, work_root / f"{target.name}-{round_ + 1}", concurrencies, args.seconds, tally)
                except Exception as err:  # NOTE: a peer that breaks in any way is reported, never ends the run
                    failures[titles[target.name]] = f"round {round_ + 1}: {_reason(err)}"
                    log(f"{target.name}: dropped, {_reason(err)}")
                    live.remove(target)
    finally:
        if args.keep:
            log(f"work folder kept: {work_root}")
        else:
            shutil.rmtree(work_root, ignore_errors=True)

    report = report_lines(args, tally, concurrencies, targets, peers, failures)
    report += [
        f"- wall time: {time.monotonic() - began:.0f} s ({installed - began:.0f} s of it installing), "
        f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}",
    ]
    text = "\n".join(report) + "\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


def report_lines(
    args: argparse.Namespace,
    tally: Tally,
    concurrencies: list[int],
    targets: list[Target],
    peers: list[Peer],
    failures: dict[str, str],
) -> list[str]:
    lines = [
        f"## Peers: median of {args.rounds} round(s), {args.seconds:g} s wrk cells, closed loop on loopback",
        "",
        *table(tally, concurrencies, targets),
        "",
        "- our service: `python -m service --workers 1` on the committed repository at its defaults (onnxruntime "
        "1 intra-op thread, micro-batching up to 64 images a run, no added delay); `POST /predict` takes the "
        "multipart PNG, `POST /v2/models/mnist_cnn/infer` the V2 JSON body",
    ]
    for peer in peers:
        if peer.title in failures:
            continue
        kind = "the multipart PNG of /predict" if peer.request == IMAGE_REQUEST else "the V2 JSON body of our V2 infer"
        says = f" (GET /v2: {tally.metadata[peer.name]})" if tally.metadata.get(peer.name) else ""
        lines.append(f"- {peer.title}{says}: `POST {peer.path}` with {kind}; {peer.settings}")
        lines.append(f"  (venv {peer.venv.name}: {', '.join(peer.requirements)})")
    lines += [f"- {title}: **not measured**, {reason}" for title, reason in failures.items()]
    lines += [
        f"- machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; every server and wrk share the CPUs "
        "(no pinning), one server up at a time",
        "- RSS: resident memory of the server's whole process tree after its cells (median of rounds); start: spawn "
        "to the first 200 from its ready path",
    ]
    return lines


if __name__ == "__main__":
    main()
