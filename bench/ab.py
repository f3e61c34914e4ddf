"""A/B: the same endpoint on two checkouts of this service, alternating cell by cell in one run.

    git worktree add /tmp/before <commit>                 # the code to compare against, once
    .venv/bin/python bench/ab.py /tmp/before --endpoint "V2 infer (JSON, 1 image)"
    .venv/bin/python bench/ab.py /tmp/before --endpoint /predict --concurrency 1 32 --rounds 5

Each checkout serves its own committed model with `python -m service --log-level warning` (one worker), both
on loopback and started once; `wrk` then drives before, after, before, after ... for `--rounds` rounds per
concurrency, so drift in the machine's other load lands on both sides. Reports each side's median req/s and
p99 over the rounds, and the median of the per-round ratios (after / before).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.load import DIGIT_PNG, Result, bodies, run_wrk  # noqa: E402
from bench.servers import Server, service_env  # noqa: E402

HERE = Path(__file__).resolve().parents[1]


def server_for(checkout: Path, name: str) -> Server:
    # NOTE: a checkout from before the model repository (2026-12-01) reads MNIST_MODEL_PATH instead.
    env = service_env(
        checkout / "models", PYTHONPATH=str(checkout), MNIST_MODEL_PATH=str(checkout / "models/mnist_cnn.onnx")
    )
    server = Server.for_service(env, None, "--log-level", "warning", name=name)
    server.cwd = checkout
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path, help="root of the checkout to compare against")
    parser.add_argument("--after", type=Path, default=HERE, help="root of the new checkout (default: this one)")
    parser.add_argument("--endpoint", default="/predict", help=f"one of: {', '.join(bodies(b''))}")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32], help="wrk connections (default 1 32)")
    parser.add_argument("--seconds", type=float, default=5, help="seconds per cell (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="before/after alternations per concurrency (default 3)")
    args = parser.parse_args()
    body = bodies(DIGIT_PNG.read_bytes())[args.endpoint]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sides = {
            "before": server_for(args.before.resolve(), "before"),
            "after": server_for(args.after.resolve(), "after"),
        }
        for server in sides.values():
            server.start(work)
        try:
            print(f"| {args.endpoint} | c | before req/s | after req/s | ratio | before p99 ms | after p99 ms |")
            print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
            for connections in args.concurrency:
                runs: dict[str, list[Result]] = {"before": [], "after": []}
                for server in sides.values():  # warm both
                    run_wrk(server.url, body, work, connections=connections, seconds=1, cpus=None)
                for _ in range(args.rounds):
                    for name, server in sides.items():
                        result = run_wrk(
                            server.url, body, work, connections=connections, seconds=args.seconds, cpus=None
                        )
                        if result.non_2xx or result.socket_errors:
                            raise SystemExit(f"{name}: {result.non_2xx} non-2xx, {result.socket_errors} socket errors")
                        runs[name].append(result)
                rps = {name: statistics.median(r.rps for r in results) for name, results in runs.items()}
                p99 = {name: statistics.median(r.p99_ms for r in results) for name, results in runs.items()}
                ratio = statistics.median(a.rps / b.rps for a, b in zip(runs["after"], runs["before"], strict=True))
                print(
                    f"| | {connections} | {rps['before']:,.0f} | {rps['after']:,.0f} | {ratio:.2f}x "
                    f"| {p99['before']:.1f} | {p99['after']:.1f} |",
                    flush=True,
                )
        finally:
            for server in sides.values():
                server.stop()


if __name__ == "__main__":
    main()
