"""What is served: a served name with the ref it follows, and the versions in memory.

The :class:`~modelport.serving.manager.ModelManager` keeps these up to date; the data plane,
the docs and the monitor routes read them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from modelport.errors import RequestTimeout
from modelport.packaging import LoadedModel
from modelport.ref import ModelRef
from modelport.serving.batcher import AdaptiveBatcher
from modelport.serving.deployment import ModelSpec
from modelport.serving.runner import PredictRunner

State = Literal["loading", "ready", "failed", "unloaded"]
Arrays = dict[str, np.ndarray]


@dataclass
class LoadedVersion:
    """One model version in memory, with its batcher and a count of requests using it."""

    name: str
    version: int | None
    model: LoadedModel
    runner: PredictRunner
    batcher: AdaptiveBatcher | None
    load_seconds: float
    inflight: int = 0

    async def predict(
        self, inputs: Arrays, outputs: Collection[str] | None, timeout: float
    ) -> Arrays:
        """Run through the batcher when there is one, else straight through the runner.

        A request that took this version just before a swap let it go (its batcher is
        closed) is still answered by it, straight through the runner: the swap never fails
        a request that was already routed.

        Raises :class:`RequestTimeout` when no answer comes within ``timeout`` seconds.
        """
        self.inflight += 1
        try:
            if self.batcher is not None and not self.batcher.closed:
                return await self.batcher.submit(inputs, outputs, timeout)
            try:
                async with asyncio.timeout(timeout):
                    return await self.runner(inputs, outputs)
            except TimeoutError:
                raise RequestTimeout(self.name, timeout) from None
        finally:
            self.inflight -= 1


@dataclass
class ServedModel:
    """A name in the URLs, the ref it follows, and the version currently answering."""

    name: str
    spec: ModelSpec
    index: int
    """The model's row on the worker board."""
    state: State = "loading"
    current: LoadedVersion | None = None
    next: LoadedVersion | None = None
    """Loaded and warm, waiting until every worker holds it (one worker: never for long)."""
    error: str | None = None
    seen_epoch: int = 0
    """The last repository command (see the board) this worker applied."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def ref(self) -> ModelRef:
        return ModelRef.parse(self.spec.ref)

    @property
    def follows_registry(self) -> bool:
        """True for ``name`` and ``name@alias``: the version behind them can change."""
        ref = self.ref
        return ref.path is None and ref.version is None


# An absolute path (two or more parts) inside a message.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s'\"/:]+/)+([^\s'\"/:]*)")


def client_reason(error: str | None) -> str | None:
    """A load failure as clients see it: the server's file paths cut to their last part (the
    full message, with paths, stays in the server's log)."""
    return None if error is None else _ABSOLUTE_PATH.sub(r"\1", error)
