"""The batcher on its own (a recording stand-in for the model, no server): large requests are
split and taken in turn with others, batches close on the token budget, timings add up."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from maskctl.serving.http.batcher import Batcher


class Recorder:
    """``run`` (of ``MaskedModel``) that notes each batch and answers each encoded input with
    itself; the first batch is held until ``release`` so others can queue behind it."""

    def __init__(self, hold_first: bool = False) -> None:
        self.batches: list[list[tuple[str, object]]] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        if not hold_first:
            self.release.set()

    def run(self, encoded, batch_size):
        self.batches.append(list(encoded))
        self.entered.set()
        self.release.wait(10)
        return list(encoded)


def _run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 30))


def test_a_small_request_waits_for_one_batch_of_a_large_one_not_all_of_it():
    model = Recorder(hold_first=True)

    async def main():
        batcher = Batcher(model, max_batch=8, max_wait_s=0.0, compute=ThreadPoolExecutor(1))
        batcher.start()
        big = asyncio.ensure_future(batcher.submit([("a", i) for i in range(40)]))
        while not model.entered.is_set():
            await asyncio.sleep(0.001)
        small = asyncio.ensure_future(batcher.submit([("b", "x")]))
        await asyncio.sleep(0.01)
        model.release.set()
        (big_results, _), (small_results, timing) = await asyncio.gather(big, small)
        await batcher.stop()
        return big_results, small_results, timing

    big_results, small_results, timing = _run(main())
    assert big_results == list(range(40)) and small_results == ["x"]  # in order, split or not
    assert all(len(b) <= 8 for b in model.batches) and len(model.batches) == 6
    assert "x" in model.batches[1]  # the second batch already: not after all 40
    assert timing.total_ms >= timing.queue_ms and timing.inference_ms > 0
    assert set(timing.headers()) == {"x-queue-time", "x-inference-time", "x-total-time"}


def test_a_batch_closes_on_the_token_budget():
    model = Recorder()

    async def main():
        batcher = Batcher(model, max_batch=32, max_wait_s=0.05, compute=ThreadPoolExecutor(1), max_tokens=100)
        batcher.start()
        # rows x longest row: 4 x 25 fits, a fifth 25-token input would not; a 300-token input
        # (over the budget alone) still runs, by itself
        costs = [25] * 6 + [300, 10]
        results, _ = await batcher.submit([("a", i) for i in range(8)], costs)
        await batcher.stop()
        return results

    assert _run(main()) == list(range(8))
    assert [len(b) for b in model.batches] == [4, 2, 1, 1]


def test_a_failing_batch_fails_its_requests_and_the_loop_goes_on():
    class Broken(Recorder):
        def run(self, encoded, batch_size):
            if "bug" in encoded:
                raise RuntimeError("a bug")
            return super().run(encoded, batch_size)

    model = Broken()

    async def main():
        batcher = Batcher(model, max_batch=2, max_wait_s=0.0, compute=ThreadPoolExecutor(1))
        batcher.start()
        failed = None
        try:
            await batcher.submit([("a", "bug"), ("a", 1), ("a", 2), ("a", 3)])
        except RuntimeError as exc:
            failed = exc
        after, _ = await batcher.submit([("a", "fine")])
        await batcher.stop()
        return failed, after, dict(batcher.pending)

    failed, after, pending = _run(main())
    assert isinstance(failed, RuntimeError) and after == ["fine"] and pending == {}
