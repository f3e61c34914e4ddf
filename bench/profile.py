"""Where a request's time goes on a real server under load: py-spy samples `python -m service` while wrk drives
one endpoint, and every sample of the event-loop thread is put in one stage of the request path.

    .venv/bin/pip install py-spy                                   # once (a sampling profiler; needs ptrace)
    .venv/bin/python -m bench.profile                              # every path, both models, this checkout
    .venv/bin/python -m bench.profile --checkout /tmp/before       # the same for another checkout's code
    .venv/bin/python -m bench.profile --paths /predict --markdown out.md

Each path gets a fresh server (one worker, --log-level warning), `--warmup` s of load, then `--seconds` s of
load with py-spy recording (`--rate` Hz, --nonblocking so the server is never paused; idle samples left out).
A stage's microseconds per request are its share of the event-loop thread's samples times that thread's CPU
time in the window (from /proc), divided by the requests answered in the window (the server's own
mnist_http_requests_total). The loop thread is the one that limits throughput; the inference thread's CPU
time per request is shown beside it.
"""

from __future__ import annotations

import argparse
import contextlib
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
from bench.servers import Server, cpu_seconds, service_env  # noqa: E402

EVENT_LOOP = "event loop (uvloop, asyncio)"
# (stage, pattern on a frame's file): a sample's stage is that of its innermost frame matching any pattern
STAGES: list[tuple[str, str]] = [
    ("model run", r"^onnxruntime/"),
    ("image decode (Pillow)", r"^PIL/"),
    ("preprocess and ink checks", r"^service/(preprocess|trust|featuremaps|explain|heatmap)\.py$"),
    ("body and form parsing", r"^(python_multipart|multipart)/|^starlette/formparsers\.py$|^service/uploads\.py$"),
    ("V2 tensor decode and encode", r"^service/v2\.py$"),
    ("answer encoding", r"^(json|orjson)/|^starlette/responses\.py$|^service/schemas\.py$|^pydantic"),
    ("metrics", r"^prometheus_client/|^service/metrics\.py$"),
    ("batching and the thread hop", r"^service/(batching|inference)\.py$|^(concurrent|anyio)/|^threading\.py$"),
    ("HTTP parse and write (uvicorn)", r"^uvicorn/protocols/|^h11/|^httptools/"),
    ("route handler", r"^service/routes/"),
    ("middleware and routing", r"^(starlette|fastapi|uvicorn)/|^service/(routing|logs|security|main)\.py$"),
    ("batching and the thread hop", r"^asyncio/futures\.py$"),  # wrap_future: the worker's result to the loop
    (EVENT_LOOP, r"^(asyncio|selectors)"),
    ("numpy, elsewhere", r"^numpy/"),
]
COMPILED = [(stage, re.compile(pattern)) for stage, pattern in STAGES]
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*):\d+\)$")
LOOP_THREAD = "MainThread"


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
    """One path's loop-thread samples by stage, the threads' CPU time and the requests answered meanwhile."""

    path: str
    requests: int
    seconds: float
    loop: Counter[str]
    loop_cpu: float  # seconds of CPU the event-loop thread used in the window
    model_cpu: float  # and the other threads: the inference thread (model runs), decoding threads

    def per_request_us(self, stage: str) -> float:
        """Microseconds of the loop thread's time per request in this stage.

        NOTE: py-spy samples the loop thread while uvloop waits in epoll too (those stacks end in Runner.run,
        like the loop's own work), so a stage's time is its share of the samples times the window, and the
        event loop's own work is what is left of the thread's CPU time (from /proc) once the others are taken.
        """
        total = sum(self.loop.values())
        if not total or not self.requests:
            return 0.0
        if stage != EVENT_LOOP:
            return self.loop.get(stage, 0) / total * self.seconds / self.requests * 1e6
        others = sum(self.per_request_us(other) for other in self.loop if other != EVENT_LOOP)
        return max(self.busy_us - others, 0.0)

    @property
    def busy_us(self) -> float:
        return self.loop_cpu / self.requests * 1e6 if self.requests else 0.0


def parse_raw(text: str) -> Counter[str]:
    """py-spy's raw output: the event-loop thread's samples by stage."""
    loop: Counter[str] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if count.isdigit() and frames[0].endswith(LOOP_THREAD):
            loop[stage_of(frames[1:])] += int(count)
    return loop


def thread_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds so far of the process's main (event-loop) thread and of all its other threads, from /proc."""
    loop = others = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            seconds = cpu_seconds(pid, int(task.name))
            if task.name == str(pid):
                loop += seconds
            else:  # the inference thread; decoding threads for big images; onnxruntime's, if intra_op > 1
                others += seconds
    return loop, others


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
        before, cpu_before = answered(server.url), thread_cpu(server.pid)
        spy = [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(server.pid)]
        spy += ["--duration", str(round(args.seconds)), "--rate", str(args.rate), "--format", "raw", "--threads"]
        spy += ["--nonblocking", "--output", str(out)]
        subprocess.run(spy, check=True, capture_output=True)
        requests, cpu_after = answered(server.url) - before, thread_cpu(server.pid)
        load.join()
    loop_cpu, model_cpu = (after - start for after, start in zip(cpu_after, cpu_before, strict=True))
    return Profile(name, requests, args.seconds, parse_raw(out.read_text()), loop_cpu, model_cpu)


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
    stages = list(dict.fromkeys(stage for stage, _ in STAGES)) + ["other"]
    lines = ["| us of CPU per request | " + " | ".join(p.path for p in profiles) + " |"]
    lines.append("| --- |" + " ---: |" * len(profiles))
    for stage in stages:
        cells = [f"{p.per_request_us(stage):.0f}" for p in profiles]
        if any(cell != "0" for cell in cells):
            lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines.append("| **event-loop thread, in all** | " + " | ".join(f"**{p.busy_us:.0f}**" for p in profiles) + " |")
    model = [f"{p.model_cpu / (p.requests or 1) * 1e6:.0f}" for p in profiles]
    lines.append("| other threads (the inference thread's model runs) | " + " | ".join(model) + " |")
    busy = [f"{p.loop_cpu / p.seconds:.0%}" for p in profiles]
    lines.append("| event loop's share of a core | " + " | ".join(busy) + " |")
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
    tables = []
    for model in ("mnist_cnn", "mnist_modern"):
        ours = [dataclasses.replace(p, path=p.path.replace(f" [{model}]", "")) for p in profiles if model in p.path]
        if ours:
            tables.append(
                f"{model}, c={args.concurrency}, {args.seconds} s sampled at {args.rate} Hz:\n\n{table(ours)}"
            )
    text = "\n\n".join(tables)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
