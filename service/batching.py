"""Micro-batching: concurrent model runs gathered into one onnxruntime run (MLServer's adaptive batching).

Each caller queues its images with a future; one background task takes what is queued (up to a batch
size, waiting at most a short delay for more), runs it on a dedicated worker thread, and hands every
caller its own slice of the outputs. No HTTP types in here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from service.errors import BatcherClosed, InferenceFailed, ServiceError

log = logging.getLogger(__name__)

Outputs = dict[str, np.ndarray]
RunModel = Callable[[np.ndarray, Sequence[str]], Outputs]  # images (N, 1, 28, 28) -> named outputs (N, ...)
Result = Outputs | BaseException


@dataclass(slots=True)
class _Item:
    images: np.ndarray  # (k, 1, 28, 28)
    outputs: tuple[str, ...]
    future: asyncio.Future[Outputs]
    queued_at: float  # time.perf_counter() when queued


class MicroBatcher:
    """`await batcher.infer(images, outputs)` from many tasks -> few runs of up to max_batch_size images.

    A lone request runs at once; while a run is in flight the queue fills, and the next run takes it all.
    With max_delay > 0, a run that is not full and has company waits up to that long for more requests.
    When `alone()` says no other request is in the server and nothing is queued or running, the caller's
    run happens right on the event loop: there is nobody to batch with, and the two hops to the worker thread
    and back are a tenth of a lone request's time.
    """

    def __init__(
        self,
        run: RunModel,
        *,
        max_batch_size: int,
        max_delay: float,
        on_batch: Callable[[int], None] | None = None,
        on_queued: Callable[[float], None] | None = None,
        alone: Callable[[], bool] | None = None,
    ) -> None:
        self.run = run
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay  # seconds
        self._on_batch = on_batch  # images per model run (called on the worker thread)
        self._on_queued = on_queued  # seconds each request waited for its run to start (worker thread)
        self._alone = alone  # True while the caller is the only request in the server
        self._running = False  # a batch is on the worker thread
        self._queue: deque[_Item] = deque()
        self._arrival: asyncio.Future[None] | None = None  # set when the serving task sleeps
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False

    async def start(self) -> None:
        """Start the serving task and its worker thread (in the app's lifespan)."""
        self._closing = False
        # One thread: onnxruntime's run is ~0.1 ms per image, so a second concurrent run would only
        # fight the event loop for the same cores; batches grow instead.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mnist-infer")
        self._task = asyncio.create_task(self._serve(), name="mnist-micro-batcher")

    async def stop(self) -> None:
        """Take no new requests, finish every queued one, then stop the task and the thread."""
        self._closing = True
        self._wake()
        if self._task is not None:
            try:
                await self._task
            finally:
                self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def __aenter__(self) -> MicroBatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def infer(self, images: np.ndarray, outputs: tuple[str, ...]) -> Outputs:
        """Queue images (k, 1, 28, 28) and wait for their outputs, each (k, ...), from a shared run."""
        if self._task is None or self._closing:
            raise BatcherClosed("the model is not serving: the server is starting or shutting down; retry")
        if self._alone is not None and self._idle() and self._alone():
            # NOTE: a request often runs from its first byte to here without yielding, so others the loop
            # has ready are not yet in the server: one yield lets them start, and then `alone` can tell.
            await asyncio.sleep(0)
            if self._idle() and self._alone():
                return self._run_inline(images, outputs)
        future: asyncio.Future[Outputs] = asyncio.get_running_loop().create_future()
        self._queue.append(_Item(images, outputs, future, time.perf_counter()))
        self._wake()
        # NOTE: if this caller is cancelled (client gone), the future is cancelled with it; the batch
        # skips or ignores it, and nobody else notices.
        return await future

    def _idle(self) -> bool:
        return not self._queue and not self._running

    def _run_inline(self, images: np.ndarray, outputs: tuple[str, ...]) -> Outputs:
        # NOTE: blocks the loop for one run (0.1-1 ms here); only ever taken with no other request to serve.
        if self._on_queued is not None:
            self._on_queued(0.0)
        result = self._run_model(images, outputs)
        if isinstance(result, BaseException):
            raise result
        return result

    # ---- the serving task ---------------------------------------------------------------------------

    def _wake(self) -> None:
        if self._arrival is not None and not self._arrival.done():
            self._arrival.set_result(None)

    async def _sleep_until_arrival(self, timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        self._arrival = loop.create_future()
        timer = loop.call_later(timeout, self._wake) if timeout is not None else None
        try:
            await self._arrival
        finally:
            self._arrival = None
            if timer is not None:
                timer.cancel()

    async def _serve(self) -> None:
        try:
            while True:
                if not self._queue:
                    if self._closing:
                        return
                    await self._sleep_until_arrival(None)
                    continue
                batch = await self._gather()
                if batch:
                    await self._run(batch)
        finally:  # only left early when cancelled: nobody may wait forever
            self._closing = True
            self._fail_queued(BatcherClosed("the server is shutting down: retry on another instance"))

    def _take(self, batch: list[_Item], size: int) -> int:
        # Move queued items into the batch while they fit; an oversized request runs alone, never split.
        while self._queue:
            item = self._queue[0]
            if item.future.done():  # its caller was cancelled while it waited
                self._queue.popleft()
                continue
            if batch and size + len(item.images) > self.max_batch_size:
                break
            batch.append(self._queue.popleft())
            size += len(item.images)
        return size

    async def _gather(self) -> list[_Item]:
        batch: list[_Item] = []
        size = self._take(batch, 0)
        if self.max_delay <= 0 or len(batch) < 2 or self._closing:
            return batch  # nothing to wait for: alone (low load) or no delay configured
        deadline = time.perf_counter() + self.max_delay
        while size < self.max_batch_size and not self._queue:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            await self._sleep_until_arrival(remaining)
            size = self._take(batch, size)
        return batch

    async def _run(self, batch: list[_Item]) -> None:
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        # NOTE: the run happens on the worker thread while this task awaits it: the event loop keeps
        # serving other requests, which queue up for the next run.
        self._running = True
        try:
            await asyncio.shield(loop.run_in_executor(self._executor, self._run_and_settle, loop, batch))
        except BaseException:  # cancelled mid-run (the loop is going away): fail this batch, not hang it
            _settle(batch, [BatcherClosed("the server stopped during this request's model run") for _ in batch])
            raise
        finally:
            self._running = False

    def _run_and_settle(self, loop: asyncio.AbstractEventLoop, batch: list[_Item]) -> None:
        # On the worker thread. The answers go straight to the loop from here, a loop iteration sooner
        # than through this job's own future (on a busy loop, an iteration is a few milliseconds).
        started = time.perf_counter()
        if self._on_queued is not None:
            for item in batch:
                self._on_queued(started - item.queued_at)
        try:
            results = self._run_groups(batch)
        except BaseException as err:  # a bug here must not stop the batcher or leave callers waiting
            log.exception("micro-batcher failed on a batch of %d requests", len(batch))
            results = [InferenceFailed(f"inference failed: {_first_line(err)}") for _ in batch]
        loop.call_soon_threadsafe(_settle, batch, results)

    def _run_groups(self, batch: list[_Item]) -> list[Result]:
        # One model run per distinct output set; each caller gets its own rows (views, not copies).
        groups: dict[tuple[str, ...], list[int]] = {}
        for index, item in enumerate(batch):
            groups.setdefault(item.outputs, []).append(index)
        results: list[Result] = [BatcherClosed("not run")] * len(batch)  # every slot is filled below
        for outputs, indices in groups.items():
            items = [batch[index] for index in indices]
            images = items[0].images if len(items) == 1 else np.concatenate([item.images for item in items])
            values = self._run_model(images, outputs)  # each (N, ...)
            if isinstance(values, BaseException):
                for index in indices:
                    results[index] = values
                continue
            start = 0
            for index, item in zip(indices, items, strict=True):
                stop = start + len(item.images)
                results[index] = {name: value[start:stop] for name, value in values.items()}
                start = stop
        return results

    def _run_model(self, images: np.ndarray, outputs: tuple[str, ...]) -> Result:
        # One onnxruntime run; a failure is every caller's InferenceFailed, never the batcher's end.
        if self._on_batch is not None:
            self._on_batch(len(images))
        try:
            return self.run(images, outputs)
        except Exception as err:
            log.exception("model run of %d images failed", len(images))
            return InferenceFailed(f"inference failed for this request's batch: {_first_line(err)}")

    def _fail_queued(self, error: ServiceError) -> None:
        while self._queue:
            item = self._queue.popleft()
            if not item.future.done():
                item.future.set_exception(error)


def _settle(batch: list[_Item], results: Sequence[Result]) -> None:
    # On the event loop: every caller still waiting gets its own result (or error).
    for item, result in zip(batch, results, strict=True):
        if item.future.done():  # cancelled: the client went away
            continue
        if isinstance(result, BaseException):
            item.future.set_exception(result)
        else:
            item.future.set_result(result)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
