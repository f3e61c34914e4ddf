"""What makes a running server re-read its model repository besides the control endpoints: SIGHUP and a timer."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from service.control import ModelControl

log = logging.getLogger(__name__)


async def poll(control: ModelControl, seconds: float) -> None:
    """Re-read the repository every `seconds` until cancelled; a failed re-read is logged, never fatal."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await control.reread("poll")
        except Exception:
            log.exception("repository poll failed; the next one is in %g s", seconds)


@asynccontextmanager
async def watching(control: ModelControl, mode: str, poll_s: float) -> AsyncIterator[None]:
    """For the app's lifespan: with mode explicit or poll, SIGHUP re-reads the repository; with poll, a timer too.

    With mode none, SIGHUP is logged and ignored (its default action would end the server).
    """
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[object]] = set()

    def on_sighup() -> None:
        if mode == "none":
            log.warning("SIGHUP ignored: MNIST_MODEL_CONTROL is none, so the repository is read only at start-up")
            return
        task = loop.create_task(control.reread("SIGHUP"), name="mnist-reread")
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    # NOTE: only the main thread may set signal handlers (uvicorn runs the app there; tests may not).
    with suppress(ValueError, RuntimeError, NotImplementedError):
        loop.add_signal_handler(signal.SIGHUP, on_sighup)
    if mode == "poll":
        poller = loop.create_task(poll(control, poll_s), name="mnist-repository-poll")
        tasks.add(poller)
    try:
        yield
    finally:
        with suppress(ValueError, RuntimeError, NotImplementedError):
            loop.remove_signal_handler(signal.SIGHUP)
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
