"""The adaptive batcher: same answers as one by one, real batches, isolated failures."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import cast

import numpy as np
import pytest

from modelport.errors import FlavorError, Overloaded, RequestTimeout
from modelport.packaging import LoadedModel
from modelport.serving.batcher import AdaptiveBatcher
from modelport.serving.runner import PredictFn, PredictRunner
from modelport.serving.served import LoadedVersion

Arrays = dict[str, np.ndarray]
TIMEOUT = 30.0


def threaded(predict: PredictFn, executor: ThreadPoolExecutor) -> PredictRunner:
    """A runner that always uses the pool, as a slow model's would."""
    return PredictRunner(predict, executor, inline_below=0.0)


def double(inputs: Arrays, outputs: Collection[str] | None) -> Arrays:
    """A model that refuses any row containing a negative number (like an unseen category)."""
    x = inputs["x"]
    if (x < 0).any():
        raise ValueError("negative values are not allowed")
    return {"y": x * 2, "rows": np.full(x.shape[0], x.shape[0])}


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=2)
    yield pool
    pool.shutdown()


def make(executor: ThreadPoolExecutor, **kw: float) -> AdaptiveBatcher:
    options = {"max_batch_size": 16, "max_delay": 0.005, "max_queue": 1000} | kw
    return AdaptiveBatcher(
        "m",
        threaded(double, executor),
        max_batch_size=int(options["max_batch_size"]),
        max_delay=options["max_delay"],
        max_queue=int(options["max_queue"]),
    )


def test_concurrent_requests_are_batched_and_answers_match(executor: ThreadPoolExecutor) -> None:
    async def main() -> list[Arrays]:
        batcher = make(executor)
        rows = [np.array([[float(i), float(i) + 0.5]]) for i in range(64)]
        results = await asyncio.gather(*(batcher.submit({"x": r}, None, TIMEOUT) for r in rows))
        assert batcher.stats.largest_batch > 1
        assert batcher.stats.requests == 64
        assert batcher.stats.batches < 64
        await batcher.close()
        return results

    results = asyncio.run(main())
    for i, out in enumerate(results):
        np.testing.assert_array_equal(out["y"], [[2.0 * i, 2.0 * i + 1.0]])


def test_batches_never_exceed_max_rows(executor: ThreadPoolExecutor) -> None:
    async def main() -> None:
        batcher = make(executor, max_batch_size=8)
        data = [np.ones((3, 2)) * i for i in range(20)]
        results = await asyncio.gather(*(batcher.submit({"x": d}, None, TIMEOUT) for d in data))
        for d, out in zip(data, results, strict=True):
            assert out["y"].shape == (3, 2)
            np.testing.assert_array_equal(out["y"], d * 2)
            assert out["rows"][0] <= 8  # the model saw at most 8 rows at once
        await batcher.close()

    asyncio.run(main())


def test_one_bad_request_fails_alone(executor: ThreadPoolExecutor) -> None:
    async def main() -> list[Arrays | BaseException]:
        batcher = make(executor)
        rows = [np.array([[1.0, 2.0]]) * i for i in range(32)]
        rows[7] = np.array([[-1.0, 1.0]])
        out = await asyncio.gather(
            *(batcher.submit({"x": r}, None, TIMEOUT) for r in rows), return_exceptions=True
        )
        await batcher.close()
        return out

    results = asyncio.run(main())
    failures = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    assert failures == [7]
    assert isinstance(results[7], ValueError)
    assert "negative values" in str(results[7])
    ok = results[8]
    assert not isinstance(ok, BaseException)
    np.testing.assert_array_equal(ok["y"], [[16.0, 32.0]])


def test_requested_outputs_are_filtered_per_request(executor: ThreadPoolExecutor) -> None:
    async def main() -> tuple[Arrays, Arrays]:
        batcher = make(executor)
        a, b = await asyncio.gather(
            batcher.submit({"x": np.ones((1, 2))}, ["y"], TIMEOUT),
            batcher.submit({"x": np.ones((1, 2))}, None, TIMEOUT),
        )
        await batcher.close()
        return a, b

    only_y, everything = asyncio.run(main())
    assert list(only_y) == ["y"]
    assert set(everything) == {"y", "rows"}


def test_full_queue_is_refused(executor: ThreadPoolExecutor) -> None:
    release = threading.Event()

    def slow(inputs: Arrays, outputs: Collection[str] | None) -> Arrays:
        release.wait(5)
        return {"y": inputs["x"]}

    async def main() -> None:
        batcher = AdaptiveBatcher(
            "m", threaded(slow, executor), max_batch_size=1, max_delay=0.0, max_queue=2
        )
        first = asyncio.ensure_future(batcher.submit({"x": np.ones((1, 1))}, None, TIMEOUT))
        await asyncio.sleep(0.05)  # the first is now running; the next two wait in the queue
        queued = [
            asyncio.ensure_future(batcher.submit({"x": np.ones((1, 1))}, None, TIMEOUT))
            for _ in range(2)
        ]
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded, match=r"model 'm' has 2 requests queued"):
            await batcher.submit({"x": np.ones((1, 1))}, None, TIMEOUT)
        release.set()
        await asyncio.gather(first, *queued)
        await batcher.close()

    asyncio.run(main())


def test_close_fails_what_is_still_queued(executor: ThreadPoolExecutor) -> None:
    release = threading.Event()

    def slow(inputs: Arrays, outputs: Collection[str] | None) -> Arrays:
        release.wait(5)
        return {"y": inputs["x"]}

    async def main() -> None:
        batcher = AdaptiveBatcher(
            "m", threaded(slow, executor), max_batch_size=1, max_delay=0, max_queue=9
        )
        running = asyncio.ensure_future(batcher.submit({"x": np.ones((1, 1))}, None, TIMEOUT))
        await asyncio.sleep(0.05)
        waiting = asyncio.ensure_future(batcher.submit({"x": np.ones((1, 1))}, None, TIMEOUT))
        await asyncio.sleep(0.01)
        await batcher.close()
        with pytest.raises(FlavorError, match="was unloaded"):
            await waiting
        release.set()
        running.cancel()

    asyncio.run(main())


def test_a_model_that_drops_rows_fails_the_batch_clearly(executor: ThreadPoolExecutor) -> None:
    def summary(inputs: Arrays, outputs: Collection[str] | None) -> Arrays:
        return {"total": np.asarray([inputs["x"].sum()])}

    async def main() -> list[Arrays | BaseException]:
        batcher = AdaptiveBatcher(
            "m", threaded(summary, executor), max_batch_size=8, max_delay=0.01, max_queue=9
        )
        out = await asyncio.gather(
            *(batcher.submit({"x": np.ones((2, 1))}, None, TIMEOUT) for _ in range(4)),
            return_exceptions=True,
        )
        await batcher.close()
        return out

    results = asyncio.run(main())
    # batched: the row-count check fails; each request is then retried alone and succeeds
    for result in results:
        assert not isinstance(result, BaseException)
        np.testing.assert_array_equal(result["total"], [2.0])


def test_with_no_delay_a_batch_is_what_queued_while_the_last_one_ran(
    executor: ThreadPoolExecutor,
) -> None:
    async def main() -> list[Arrays]:
        batcher = make(executor, max_delay=0.0)
        rows = [np.array([[float(i), 0.0]]) for i in range(40)]
        results = await asyncio.gather(*(batcher.submit({"x": r}, None, TIMEOUT) for r in rows))
        # all 40 queued before the loop first ran: full batches of 16, then the rest
        assert batcher.stats.sizes == {16: 2, 8: 1}
        lone = await batcher.submit({"x": np.array([[7.0, 0.0]])}, None, TIMEOUT)
        np.testing.assert_array_equal(lone["y"], [[14.0, 0.0]])
        assert batcher.stats.sizes[1] == 1  # alone: run at once, not held back for company
        await batcher.close()
        return results

    for i, out in enumerate(asyncio.run(main())):
        np.testing.assert_array_equal(out["y"], [[2.0 * i, 0.0]])


def test_a_request_that_times_out_fails_alone_and_leaves_the_queue(
    executor: ThreadPoolExecutor,
) -> None:
    release = threading.Event()

    def slow(inputs: Arrays, outputs: Collection[str] | None) -> Arrays:
        release.wait(5)
        return {"y": inputs["x"]}

    async def main() -> None:
        batcher = AdaptiveBatcher(
            "m", threaded(slow, executor), max_batch_size=1, max_delay=0, max_queue=9
        )
        running = asyncio.ensure_future(batcher.submit({"x": np.ones((1, 1))}, None, TIMEOUT))
        await asyncio.sleep(0.05)
        with pytest.raises(RequestTimeout, match=r"model 'm' did not answer within 0.05 s"):
            await batcher.submit({"x": np.ones((1, 1))}, None, 0.05)
        release.set()
        np.testing.assert_array_equal((await running)["y"], [[1.0]])
        assert batcher.stats.requests == 1  # the timed-out request never ran
        await batcher.close()

    asyncio.run(main())


def test_a_request_routed_before_a_swap_is_answered_while_its_batcher_closes(
    executor: ThreadPoolExecutor,
) -> None:
    """The swap race a 2-worker CI run hit: the manager let the old version go (its batcher
    closing) while a request that had already taken that version was reading its body; the
    request then queued behind the closing loop and failed with "was unloaded" (a 422)."""

    async def main() -> Arrays:
        batcher = make(executor)
        loaded = LoadedVersion(
            "m", 1, cast(LoadedModel, None), threaded(double, executor), batcher, 0.0
        )
        await loaded.predict({"x": np.ones((1, 2))}, None, TIMEOUT)  # the loop is running
        closing = asyncio.ensure_future(batcher.close())
        await asyncio.sleep(0)  # close() now waits for the cancelled loop to end
        assert batcher.closed
        assert not closing.done()
        answer = await loaded.predict({"x": np.full((1, 2), 3.0)}, None, TIMEOUT)
        await closing
        return answer

    np.testing.assert_array_equal(asyncio.run(main())["y"], [[6.0, 6.0]])
