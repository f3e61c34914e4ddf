"""Where a request's time goes on a real server under load: py-spy samples `python -m service` while wrk drives
one endpoint, and every sample of the event-loop thread is put in one stage of the request path.

    .venv/bin/pip install py-spy                                   # once (a sampling profiler; needs ptrace)
    .venv/bin/python -m bench.profile                              # every path, both models, this checkout
    .venv/bin/python -m bench.profile --checkout /tmp/before       # the same for another checkout's code
    .venv/bin/python -m bench.profile --paths /predict --markdown out.md

Each path gets a fresh server (one worker, --log-level warning), `--warmup` s of load, then `--seconds` s of
load with py-spy recording (`--rate` Hz, --idle, --nonblocking so the server is never paused). A stage's
microseconds per request are its share of the loop thread's samples times the window, divided by the requests
answered in the window (from the server's own mnist_http_requests_total). The loop thread is the one that
limits throughput; the model thread's busy time per request is shown beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.load import DIGIT_PNG, Body, bodies, multipart, run_wrk  # noqa: E402
from bench.servers import Server, service_env  # noqa: E402

# (stage, pattern on a frame's file): a sample's stage is that of its innermost frame matching any pattern
STAGES: list[tuple[str, str]] = [
    ("idle (waiting for sockets)", r"^selectors\.py$"),
    ("model run", r"^onnxruntime/"),
    ("image decode (Pillow)", r"^PIL/"),
    ("preprocess and ink checks", r"^service/(preprocess|trust|featuremaps|explain|heatmap)\.py$"),
    ("body and form parsing", r"^(python_multipart|multipart)/|^starlette/formparsers\.py$|^service/uploads\.py$"),
    ("V2 tensor decode and encode", r"^service/v2\.py$"),
    ("answer encoding", r"^(json|orjson)/|^starlette/responses\.py$|^service/schemas\.py$|^pydantic"),
    ("metrics", r"^prometheus_client/|^service/metrics\.py$"),
    ("batching and the thread hop", r"^service/(batching|inference)\.py$|^concurrent/|^threading\.py$"),
    ("HTTP parse and write (uvicorn)", r"^uvicorn/protocols/|^h11/|^httptools/"),
    ("route handler", r"^service/routes/"),
    ("middleware and routing", r"^(starlette|fastapi|uvicorn)/|^service/(routing|logs|security|main)\.py$"),
    ("batching and the thread hop", r"^asyncio/futures\.py$"),  # wrap_future: the worker's result to the loop
    ("event loop (uvloop, asyncio)", r"^asyncio/"),
]
COMPILED = [(stage, re.compile(pattern)) for stage, pattern in STAGES]
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*):\d+\)$")
LOOP_THREAD = "MainThread"
WAITING = re.compile(r"(^|\.)(_worker|get|wait) \(.*(queue|threading|thread)\.py:\d+\)$")  # an idle pool thread


def stage_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        match = FRAME.match(frame)
        if not match:
            continue
        file = re.sub(r"^.*?/(site-packages|python3\.\d+)/", "", match["file"])
        for stage, pattern in COMPILED:
            if pattern.search(file):
                return stage
    return "other"


@dataclass
class Profile:
    """One path's samples, by thread kind and stage, and the requests answered while they were taken."""

    path: str
    requests: int
    seconds: float
    loop: Counter[str]
    model_samples: int  # samples of the inference thread that were not idle

    def per_request_us(self, samples: int) -> float:
        total = sum(self.loop.values())
        return samples / total * self.seconds / self.requests * 1e6 if total and self.requests else 0.0

    @property
    def busy_us(self) -> float:
        return sum(self.per_request_us(n) for stage, n in self.loop.items() if not stage.startswith("idle"))


def parse_raw(text: str) -> tuple[Counter[str], int, int]:
    """py-spy's raw output: (loop samples by stage, busy inference-thread samples, loop samples in all)."""
    loop: Counter[str] = Counter()
    model = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread, frames = frames[0], frames[1:]
        stage = stage_of(frames)
        if thread.endswith(LOOP_THREAD):
            loop[stage] += int(count)
        elif "mnist-infer" in thread or "ThreadPoolExecutor" in thread:
            waiting = bool(frames) and WAITING.search(frames[-1]) is not None
            model += 0 if waiting else int(count)
    return loop, model, sum(loop.values())


def answered(url: str) -> int:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("mnist_http_requests_total{") and 'route="/metrics"' not in line
    )


def profile_path(checkout: Path, name: str, body: Body, args: argparse.Namespace, work: Path) -> Profile:
    env = service_env(checkout / "models", PYTHONPATH=str(checkout))
    server = Server.for_service(env, None, "--log-level", "warning", name="profiled")
    server.cwd = checkout
    with server.running(work):
        run_wrk(server.url, body, work, connections=args.concurrency, seconds=args.warmup, cpus=None)
        out = work / "raw.txt"
        load = threading.Thread(
            target=run_wrk,
            args=(server.url, body, work),
            kwargs={"connections": args.concurrency, "seconds": args.seconds + 2, "cpus": None},
        )
        load.start()
        # NOTE: wrk connects at once; py-spy starts a moment later and stops before wrk does
        before = answered(server.url)
        spy = [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(server.pid)]
        spy += ["--duration", str(round(args.seconds)), "--rate", str(args.rate), "--format", "raw", "--threads"]
        spy += ["--idle", "--nonblocking", "--output", str(out)]
        subprocess.run(spy, check=True, capture_output=True)
        requests = answered(server.url) - before
        load.join()
    loop, model, _ = parse_raw(out.read_text())
    return Profile(name, requests, args.seconds, loop, model)


def paths(selected: list[str] | None) -> dict[str, Body]:
    png = DIGIT_PNG.read_bytes()
    every = bodies(png)
    single = multipart("file", [png])
    every["/explain (occlusion)"] = Body("/explain", single.content_type, single.data)
    chosen = {name: body for name, body in every.items() if not selected or any(s in name for s in selected)}
    out: dict[str, Body] = {}
    for name, body in chosen.items():
        out[f"{name} [mnist_cnn]"] = body
        if body.path.startswith("/v2/"):
            modern = body.path.replace("mnist_cnn", "mnist_modern")
        else:
            modern = body.path + ("&" if "?" in body.path else "?") + "model=mnist_modern"
        out[f"{name} [mnist_modern]"] = dataclasses.replace(body, path=modern)
    return out


def table(profiles: list[Profile]) -> str:
    stages = [stage for stage, _ in STAGES if not stage.startswith("idle")] + ["other"]
    lines = ["| stage (us per request, loop thread) | " + " | ".join(p.path for p in profiles) + " |"]
    lines.append("| --- |" + " ---: |" * len(profiles))
    for stage in stages:
        cells = [f"{p.per_request_us(p.loop.get(stage, 0)):.0f}" for p in profiles]
        if any(cell != "0" for cell in cells):
            lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines.append("| **loop busy, in all** | " + " | ".join(f"**{p.busy_us:.0f}**" for p in profiles) + " |")
    idle = [p.per_request_us(sum(n for s, n in p.loop.items() if s.startswith("idle"))) for p in profiles]
    lines.append("| loop idle | " + " | ".join(f"{us:.0f}" for us in idle) + " |")
    model = [p.model_samples / (sum(p.loop.values()) or 1) * p.seconds / (p.requests or 1) * 1e6 for p in profiles]
    lines.append("| model thread busy | " + " | ".join(f"{us:.0f}" for us in model) + " |")
    lines.append("| req/s while sampled | " + " | ".join(f"{p.requests / p.seconds:,.0f}" for p in profiles) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkout", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--paths", nargs="*", help="substrings of the path names (default: all)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rate", type=int, default=250)
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args()
    profiles = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, body in paths(args.paths).items():
            profiles.append(profile_path(args.checkout.resolve(), name, body, args, Path(tmp)))
            p = profiles[-1]
            print(f"{name}: {p.requests / p.seconds:,.0f} req/s, loop busy {p.busy_us:.0f} us/request", flush=True)
    text = table(profiles)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
