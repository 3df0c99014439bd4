"""Where a ``predict`` call runs: on the event loop when it is cheap, in a worker thread if not.

Handing a call to a thread costs a queue hop, a wake-up and a GIL hand-over each way, and the
worker may then wait up to the interpreter's switch interval (5 ms) for the GIL while the loop
is busy parsing requests. For a model whose ``predict`` takes 100 µs that is more than the call
itself, and running it inline blocks the loop no longer than parsing one large request does.

So each model's predict time is measured (an exponential moving average of wall time, taken
in whichever thread ran the call). While it stays under ``inline_below`` seconds, calls run
inline on the loop; above it they go to the worker pool, so a slow model never stalls the
server. Until a first call has been measured, calls go to the pool. A call that suddenly takes
much longer is paid once: the average rises past the bound and the next calls go to the pool.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from concurrent.futures import Executor

import numpy as np

Arrays = dict[str, np.ndarray]
PredictFn = Callable[[Arrays, Collection[str] | None], Arrays]

_WEIGHT = 0.2  # of the newest measurement in the moving average


class PredictRunner:
    """Runs one model's ``predict`` inline or in ``executor``, by its measured cost."""

    def __init__(
        self,
        predict: PredictFn,
        executor: Executor,
        *,
        inline_below: float,
        cost: float | None = None,
    ) -> None:
        self._predict = predict
        self._executor = executor
        self._inline_below = inline_below
        self._cost = cost

    @property
    def cost(self) -> float | None:
        """Moving average of one call's seconds; None before the first call."""
        return self._cost

    @property
    def inline(self) -> bool:
        """Whether the next call runs on the event loop."""
        return self._cost is not None and self._cost < self._inline_below

    async def __call__(self, inputs: Arrays, outputs: Collection[str] | None) -> Arrays:
        if self.inline:
            return self._timed(inputs, outputs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._timed, inputs, outputs)

    def _timed(self, inputs: Arrays, outputs: Collection[str] | None) -> Arrays:
        start = time.perf_counter()
        try:
            return self._predict(inputs, outputs)
        finally:
            elapsed = time.perf_counter() - start
            cost = self._cost
            self._cost = elapsed if cost is None else cost + _WEIGHT * (elapsed - cost)
