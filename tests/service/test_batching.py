"""Micro-batching: concurrent engine.infer calls share onnxruntime runs, each caller gets its own rows."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from anyio import fail_after, wait_all_tasks_blocked

from service.batching import MicroBatcher, Outputs
from service.errors import BatcherClosed, InferenceFailed
from service.inference import InferenceEngine
from service.runtime import ModelRuntime

pytestmark = pytest.mark.anyio

# NOTE: nothing here synchronises on the clock. `await wait_all_tasks_blocked()` returns once every other task
# waits (a caller for its result, the batcher's task for a run or for company), so the callers just started
# have queued; RunRecorder.started() waits for a run to begin on the worker thread. "Does not wait out the
# delay" is tested with a delay of 30 s and 10 s allowed for what takes milliseconds.
LONG_DELAY = 30.0


@pytest.fixture(scope="module")
def runtime(random_model: tuple[Path, Path]) -> ModelRuntime:
    return ModelRuntime.load(*random_model)


def images(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((count, 1, 28, 28), dtype=np.float32)  # (count, 1, 28, 28)


class RunRecorder:
    """A model run function around the real runtime: records batch sizes, can stall or fail on cue."""

    def __init__(self, runtime: ModelRuntime) -> None:
        self.runtime = runtime
        self.sizes: list[int] = []
        self.threads: list[threading.Thread] = []  # the thread each run ran on
        self._started = threading.Condition()  # notified as each run starts, on the worker thread
        self.gate = threading.Event()
        self.gate.set()  # clear() it to hold runs until set() again
        self.fail_next = False

    def __call__(self, batch: np.ndarray, outputs: Sequence[str]) -> Outputs:
        with self._started:
            self.sizes.append(len(batch))
            self.threads.append(threading.current_thread())
            self._started.notify_all()
        if not self.gate.wait(timeout=60):  # a failed test must not hang the worker thread for ever
            raise RuntimeError("the test never opened the gate")
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("onnxruntime exploded")
        return self.runtime.run(batch, outputs)

    async def started(self, count: int) -> None:
        """Wait, off the event loop, until `count` runs have started."""

        def wait() -> bool:
            with self._started:
                return self._started.wait_for(lambda: len(self.sizes) >= count, timeout=60)

        assert await asyncio.to_thread(wait), f"only {len(self.sizes)} runs started"


def batcher(
    run: RunRecorder, *, size: int = 64, delay: float = 0.0, alone: Callable[[], bool] | None = None
) -> MicroBatcher:
    return MicroBatcher(run, max_batch_size=size, max_delay=delay, alone=alone)


async def test_infer_gives_concurrent_callers_their_own_results(runtime: ModelRuntime) -> None:
    engine = InferenceEngine(runtime, max_batch_size=16)
    asks = [("probabilities",), ("probabilities", "conv1"), ("logits",)]
    items = [(images(1 + i % 3, seed=i), asks[i % 3]) for i in range(40)]
    async with engine:
        results = await asyncio.gather(*(engine.infer(batch, outputs) for batch, outputs in items))
    for (batch, outputs), result in zip(items, results, strict=True):
        assert set(result) == set(outputs)
        expected = runtime.run(batch, outputs)
        for name in outputs:
            assert result[name].shape == expected[name].shape
            np.testing.assert_allclose(result[name], expected[name], rtol=1e-5, atol=1e-6)


async def test_infer_forms_batches_under_concurrency(runtime: ModelRuntime) -> None:
    run = RunRecorder(runtime)
    async with batcher(run) as batching:
        run.gate.clear()  # the first run stalls; everyone else queues behind it
        first = asyncio.create_task(batching.infer(images(1, 0), ("probabilities",)))
        await run.started(1)
        rest = [asyncio.create_task(batching.infer(images(1, i), ("probabilities",))) for i in range(1, 32)]
        await wait_all_tasks_blocked()  # all 31 queued
        run.gate.set()
        await asyncio.gather(first, *rest)
    assert run.sizes == [1, 31]


async def test_infer_keeps_runs_within_max_batch_size(runtime: ModelRuntime) -> None:
    run = RunRecorder(runtime)
    async with batcher(run, size=4) as batching:
        run.gate.clear()
        first = asyncio.create_task(batching.infer(images(1, 0), ("probabilities",)))
        await run.started(1)
        counts = [1, 2, 3, 1, 1, 6, 2]  # the request of 6 is over the limit: it runs alone, never split
        rest = [asyncio.create_task(batching.infer(images(n, i), ("probabilities",))) for i, n in enumerate(counts)]
        await wait_all_tasks_blocked()  # all queued, in this order
        run.gate.set()
        results = await asyncio.gather(first, *rest)
    assert [len(result["probabilities"]) for result in results[1:]] == counts
    assert run.sizes == [1, 3, 4, 1, 6, 2]  # filled in order up to 4; nothing overtakes the queue


async def test_a_lone_request_runs_on_the_event_loop_and_others_on_the_worker(runtime: ModelRuntime) -> None:
    run = RunRecorder(runtime)
    others = False  # what the server's request count says: another request in flight or not
    async with batcher(run, alone=lambda: not others) as batching:
        alone = await batching.infer(images(2, 0), ("probabilities",))
        others = True
        together = await batching.infer(images(2, 0), ("probabilities",))
    assert run.sizes == [2, 2]
    assert run.threads[0] is threading.current_thread()  # the event loop's: no hop to the worker and back
    assert run.threads[1].name.startswith("mnist-infer")
    np.testing.assert_array_equal(alone["probabilities"], together["probabilities"])


async def test_a_lone_request_queues_while_a_run_is_on_the_worker(runtime: ModelRuntime) -> None:
    run = RunRecorder(runtime)
    others = True
    async with batcher(run, alone=lambda: not others) as batching:
        run.gate.clear()
        first = asyncio.create_task(batching.infer(images(1, 0), ("probabilities",)))
        await run.started(1)
        others = False  # alone by the count, but the worker is busy: it must not run beside it
        second = asyncio.create_task(batching.infer(images(1, 1), ("probabilities",)))
        await wait_all_tasks_blocked()
        run.gate.set()
        await asyncio.gather(first, second)
    assert run.sizes == [1, 1]
    assert all(thread.name.startswith("mnist-infer") for thread in run.threads)


async def test_a_lone_request_whose_run_fails_gets_inference_failed(runtime: ModelRuntime) -> None:
    run = RunRecorder(runtime)
    async with batcher(run, alone=lambda: True) as batching:
        run.fail_next = True
        with pytest.raises(InferenceFailed, match="onnxruntime exploded"):
            await batching.infer(images(1, 0), ("probabilities",))
        assert len((await batching.infer(images(1, 0), ("probabilities",)))["probabilities"]) == 1
    assert run.threads == [threading.current_thread()] * 2


async def test_infer_alone_does_not_wait_for_the_delay(runtime: ModelRuntime) -> None:
    run = RunRecorder(runtime)
    async with batcher(run, delay=LONG_DELAY) as batching:
        with fail_after(LONG_DELAY / 3):  # the run takes milliseconds; waiting for company would take 30 s
            await batching.infer(images(1, 0), ("probabilities",))
    assert run.sizes == [1]


async def test_infer_waits_at_most_the_delay_for_company(runtime: ModelRuntime) -> None:
    run = RunRecorder(runtime)
    delay = 0.5
    async with batcher(run, delay=delay) as batching:
        start = time.perf_counter()
        # Two callers queued together: their run waits up to the delay for a third, which never comes.
        await asyncio.gather(*(batching.infer(images(1, i), ("probabilities",)) for i in range(2)))
        elapsed = time.perf_counter() - start
    assert run.sizes == [2]
    # The run's deadline is set after `start`, so the floor is exact; the ceiling allows ten times the delay.
    assert delay <= elapsed < 10 * delay


async def test_infer_takes_late_arrivals_within_the_delay(runtime: ModelRuntime) -> None:
    run = RunRecorder(runtime)
    async with batcher(run, size=3, delay=LONG_DELAY) as batching:
        pair = [asyncio.create_task(batching.infer(images(1, i), ("probabilities",))) for i in range(2)]
        await wait_all_tasks_blocked()  # the pair's run has begun waiting for company
        assert run.sizes == []
        third = asyncio.create_task(batching.infer(images(1, 2), ("probabilities",)))
        with fail_after(LONG_DELAY / 3):  # the third fills the run: no waiting out the 30 s
            await asyncio.gather(*pair, third)
    assert run.sizes == [3]


async def test_infer_error_fails_only_its_batch(runtime: ModelRuntime) -> None:
    run = RunRecorder(runtime)
    async with batcher(run) as batching:
        run.fail_next = True
        failed = await asyncio.gather(
            *(batching.infer(images(1, i), ("probabilities",)) for i in range(3)), return_exceptions=True
        )
        after = await batching.infer(images(1, 9), ("probabilities",))
    assert all(isinstance(err, InferenceFailed) and "onnxruntime exploded" in str(err) for err in failed)
    assert after["probabilities"].shape == (1, 10)


async def test_infer_bad_images_fail_only_their_caller(runtime: ModelRuntime) -> None:
    engine = InferenceEngine(runtime)
    async with engine:
        good = asyncio.create_task(engine.infer(images(2, 0), ("probabilities",)))
        with pytest.raises(ValueError, match="float32"):
            await engine.infer(images(1, 1).astype(np.float64), ("probabilities",))
        with pytest.raises(ValueError, match="outputs"):
            await engine.infer(images(1, 1), ("conv9",))
        assert (await good)["probabilities"].shape == (2, 10)


async def test_infer_cancelled_caller_does_not_break_the_batch(runtime: ModelRuntime) -> None:
    run = RunRecorder(runtime)
    async with batcher(run) as batching:
        run.gate.clear()
        first = asyncio.create_task(batching.infer(images(1, 0), ("probabilities",)))
        await run.started(1)
        queued = [asyncio.create_task(batching.infer(images(1, i), ("probabilities",))) for i in range(1, 5)]
        await wait_all_tasks_blocked()  # all four queued behind the stalled run
        queued[1].cancel()  # a client that went away while waiting in the queue
        first.cancel()  # ... and one that went away during its run
        run.gate.set()
        results = await asyncio.gather(*queued, return_exceptions=True)
        assert isinstance(results[1], asyncio.CancelledError)
        assert all(result["probabilities"].shape == (1, 10) for i, result in enumerate(results) if i != 1)
        assert (await batching.infer(images(1, 7), ("probabilities",)))["probabilities"].shape == (1, 10)
    assert run.sizes == [1, 3, 1]  # the cancelled queued caller was left out of the run


async def test_stop_finishes_queued_requests(runtime: ModelRuntime) -> None:
    run = RunRecorder(runtime)
    batching = batcher(run)
    await batching.start()
    run.gate.clear()
    tasks = [asyncio.create_task(batching.infer(images(1, 0), ("probabilities",)))]
    await run.started(1)  # one run in flight ...
    tasks += [asyncio.create_task(batching.infer(images(1, i), ("probabilities",))) for i in range(1, 5)]
    stopping = asyncio.create_task(batching.stop())
    await wait_all_tasks_blocked()  # ... four queued behind it, and everything that can move has moved
    assert not stopping.done()  # stop waits for the run in flight and the queue behind it
    run.gate.set()
    await stopping
    assert all(task.result()["probabilities"].shape == (1, 10) for task in tasks)
    assert run.sizes == [1, 4]
    with pytest.raises(BatcherClosed):
        await batching.infer(images(1, 0), ("probabilities",))


async def test_stop_leaves_no_task_or_thread_behind(runtime: ModelRuntime) -> None:
    threads = set(threading.enumerate())
    async with batcher(RunRecorder(runtime)) as batching:
        await batching.infer(images(1, 0), ("probabilities",))
    assert not [task for task in asyncio.all_tasks() if task.get_name() == "mnist-micro-batcher"]
    assert [t for t in threading.enumerate() if t not in threads and t.name.startswith("mnist-infer")] == []
