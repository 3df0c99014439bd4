"""The predict runner: cheap models run on the event loop, slow ones in worker threads."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from modelport.serving.runner import PredictRunner

Arrays = dict[str, np.ndarray]


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=1)
    yield pool
    pool.shutdown()


class Recorder:
    """A model that notes which thread ran each call and sleeps ``seconds`` in it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.threads: list[str] = []

    def __call__(self, inputs: Arrays, outputs: Collection[str] | None) -> Arrays:
        self.threads.append(threading.current_thread().name)
        time.sleep(self.seconds)
        return {"y": inputs["x"] + 1}


def run_calls(runner: PredictRunner, calls: int) -> list[Arrays]:
    async def main() -> list[Arrays]:
        return [await runner({"x": np.array([float(i)])}, None) for i in range(calls)]

    return asyncio.run(main())


def test_a_cheap_model_moves_onto_the_loop_once_measured(executor: ThreadPoolExecutor) -> None:
    model = Recorder(0.0)
    runner = PredictRunner(model, executor, inline_below=0.5)
    assert not runner.inline  # nothing measured yet: the pool
    results = run_calls(runner, 3)
    main = threading.main_thread().name
    assert model.threads[0] != main
    assert model.threads[1:] == [main, main]
    assert runner.inline
    assert runner.cost is not None
    assert runner.cost < 0.5
    assert [r["y"][0] for r in results] == [1.0, 2.0, 3.0]


def test_a_slow_model_stays_in_the_pool(executor: ThreadPoolExecutor) -> None:
    model = Recorder(0.02)
    runner = PredictRunner(model, executor, inline_below=0.001)
    run_calls(runner, 3)
    assert threading.main_thread().name not in model.threads
    assert runner.cost is not None
    assert runner.cost >= 0.02
    assert not runner.inline


def test_a_seeded_cost_decides_the_first_call(executor: ThreadPoolExecutor) -> None:
    model = Recorder(0.0)
    run_calls(PredictRunner(model, executor, inline_below=0.001, cost=0.0001), 1)
    assert model.threads == [threading.main_thread().name]


def test_zero_bound_always_uses_the_pool(executor: ThreadPoolExecutor) -> None:
    model = Recorder(0.0)
    run_calls(PredictRunner(model, executor, inline_below=0.0, cost=0.0), 3)
    assert threading.main_thread().name not in model.threads


def test_a_call_that_turns_slow_sends_the_next_ones_to_the_pool(
    executor: ThreadPoolExecutor,
) -> None:
    model = Recorder(0.0)
    runner = PredictRunner(model, executor, inline_below=0.005, cost=0.0)
    run_calls(runner, 1)
    model.seconds = 0.2  # one slow call lifts the average past the bound
    run_calls(runner, 2)
    main = threading.main_thread().name
    assert model.threads[:2] == [main, main]
    assert model.threads[2] != main
