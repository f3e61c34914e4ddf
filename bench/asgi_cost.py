"""What one request costs inside the app, without sockets or a load generator: the request path's own bill.

    .venv/bin/python bench/asgi_cost.py                       # microseconds per request, per endpoint
    .venv/bin/python bench/asgi_cost.py --profile /predict    # and cProfile's top functions for one of them

Requests go straight into the ASGI app (lifespan run, middleware and all), `--concurrency` of them at a
time, so the numbers are the Python work per request that uvicorn's HTTP parsing comes on top of.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.load import DIGIT_PNG, Body, bodies  # noqa: E402
from service.config import Settings  # noqa: E402
from service.main import create_app  # noqa: E402


async def one_request(app: Any, body: Body) -> int:
    path, _, query = body.path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", body.content_type.encode()),
            (b"content-length", str(len(body.data)).encode()),
            *((name.lower().encode(), value.encode()) for name, value in body.headers().items()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)  # a disconnect would only come after the response
        sent = True
        return {"type": "http.request", "body": body.data, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def measure(app: Any, body: Body, count: int, concurrency: int) -> tuple[float, float]:
    """Microseconds per request (wall time, CPU time of all threads), `concurrency` requests in flight at once.

    CPU time is the steadier figure on a shared machine: other processes stretch the wall clock, not it.
    """

    async def worker(n: int) -> None:
        for _ in range(n):
            status = await one_request(app, body)
            assert status == 200, status

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(count // concurrency) for _ in range(concurrency)))
    done = count // concurrency * concurrency
    return (time.perf_counter() - start) / done * 1e6, (time.process_time() - cpu) / done * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=5000, help="requests per endpoint")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight at once")
    parser.add_argument("--profile", metavar="ENDPOINT", help="cProfile this endpoint (a key of bench.load.bodies)")
    args = parser.parse_args()
    app = create_app(Settings())
    requests = bodies(DIGIT_PNG.read_bytes())
    async with app.router.lifespan_context(app):
        for label, body in requests.items():
            if args.profile and label != args.profile:
                continue
            if await one_request(app, body) != 200:
                print(f"{label}: skipped, not 200")
                continue
            await measure(app, body, 500, args.concurrency)  # warm up
            profiler = cProfile.Profile() if args.profile else None
            if profiler:
                profiler.enable()
            wall, cpu = await measure(app, body, args.count, args.concurrency)
            print(f"{label}: {wall:.0f} us wall, {cpu:.0f} us CPU per request at concurrency {args.concurrency}")
            if profiler:
                profiler.disable()
                pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    asyncio.run(main())
