"""The model manager: which versions are in memory, and how they are swapped without downtime.

A served name follows its ref. ``churn@production`` and ``churn`` (latest ready) are polled
every ``poll_interval_s`` (and on ``load`` through the repository API); ``churn/3`` and paths
are pinned. A swap loads and warms the new version beside the old one (in a worker thread,
so serving goes on), switches ``current`` in one assignment on the event loop, lets requests
already holding the old version finish, then drops it. If the new version fails to load or
warm up, the old one keeps serving and the failure stays in ``error`` until a later swap
succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np

from modelport._identity import current_user
from modelport.config import ServingSettings, Settings
from modelport.errors import (
    ModelNotFound,
    ModelNotReady,
    ModelportError,
    RequestTimeout,
    VersionNotFound,
)
from modelport.monitoring import metrics
from modelport.packaging import LoadedModel, load_artifact, local_artifact
from modelport.ref import ModelRef
from modelport.registry import ModelVersion, Registry
from modelport.serving.batcher import AdaptiveBatcher
from modelport.serving.deployment import ModelSpec
from modelport.serving.runner import PredictRunner

logger = logging.getLogger(__name__)

State = Literal["loading", "ready", "failed", "unloaded"]
Arrays = dict[str, np.ndarray]
T = TypeVar("T")


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

        Raises :class:`RequestTimeout` when no answer comes within ``timeout`` seconds.
        """
        self.inflight += 1
        try:
            if self.batcher is not None:
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
    state: State = "loading"
    current: LoadedVersion | None = None
    error: str | None = None
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


def _given(value: int | None, default: int) -> int:
    """A per-model override when one was given (``0`` included: validated, not ignored)."""
    return default if value is None else value


def client_reason(error: str | None) -> str | None:
    """A load failure as clients see it: the server's file paths cut to their last part (the
    full message, with paths, stays in the server's log)."""
    return None if error is None else _ABSOLUTE_PATH.sub(r"\1", error)


class ModelManager:
    """Loads, swaps, drains and unloads served models. All methods run on the event loop."""

    def __init__(self, settings: Settings, specs: list[ModelSpec]) -> None:
        self.settings = settings
        self.models: dict[str, ServedModel] = {
            s.served_name: ServedModel(s.served_name, s) for s in specs
        }
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="modelport-predict")
        self._registry: Registry | None = None
        self._registry_lock = threading.Lock()
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load every model (failures are recorded, not raised), then start polling."""
        await asyncio.gather(*(self.load(name) for name in self.models))
        if any(m.follows_registry for m in self.models.values()):
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        """Stop polling and release every model."""
        if self._poller is not None:
            self._poller.cancel()
        for served in self.models.values():
            if served.current is not None and served.current.batcher is not None:
                await served.current.batcher.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._registry is not None:
            self._registry.close()

    def registry_name(self, served: str) -> str:
        """The registry model a served name stands for (itself for a path, or for a name
        not served here)."""
        model = self.models.get(served)
        ref_name = None if model is None else model.ref.name
        return ref_name or served

    def served(self, name: str) -> ServedModel:
        """The served model called ``name``; 404 if there is none."""
        served = self.models.get(name)
        if served is None:
            raise ModelNotFound(name)
        return served

    def get(self, name: str, version: int | None = None) -> LoadedVersion:
        """The version answering for ``name``; 404 if unknown, 503 while not ready."""
        served = self.served(name)
        current = served.current
        if current is None:
            raise ModelNotReady(name, client_reason(served.error) or served.state)
        if version is not None and version != current.version:
            raise VersionNotFound(name, version)
        return current

    async def load(self, name: str) -> ServedModel:
        """Resolve the model's ref now and swap to its version if it changed."""
        served = self.served(name)
        async with served.lock:
            await self._swap(served)
        return served

    async def unload(self, name: str) -> ServedModel:
        """Stop serving ``name`` until the next ``load``."""
        served = self.served(name)
        async with served.lock:
            old, served.current, served.state = served.current, None, "unloaded"
            if old is not None:
                await self._drain(old)
        return served

    async def _swap(self, served: ServedModel) -> None:
        target: ModelVersion | None = None
        try:
            target = await self._run(self._resolve, served)
            current = served.current
            if current is not None and target is not None and target.version == current.version:
                return
            if served.current is None:
                served.state = "loading"
            started = time.monotonic()
            model, cost = await self._run(self._load_and_warm, served, target)
            runner = PredictRunner(
                model.predict_arrays,
                self._executor,
                inline_below=self.settings.serving.inline_predict_ms / 1000.0,
                cost=cost,
            )
            loaded = LoadedVersion(
                served.name,
                target.version if target is not None else None,
                model,
                runner,
                self._batcher_for(served, model, runner),
                time.monotonic() - started,
            )
        except Exception as exc:  # keep serving the old version, and say why
            version = f" version {target.version}" if target is not None else ""
            previous = served.error
            served.error = f"loading {served.spec.ref}{version} failed: {exc}"
            if served.current is None:
                served.state = "failed"
            if served.error != previous:  # the poll retries: say it once, not every poll
                logger.error(
                    "model %s: %s (retried every %g s; logged again when the error changes)",
                    served.name,
                    served.error,
                    self.settings.serving.poll_interval_s,
                    exc_info=not isinstance(exc, ModelportError),
                )
            return
        old, served.current = served.current, loaded
        served.state, served.error = "ready", None
        logger.info(
            "model %s: serving version %s (loaded in %.2f s)",
            served.name,
            loaded.version,
            loaded.load_seconds,
        )
        if loaded.model.trusted_by is not None:  # a security decision: always in the log
            logger.warning(
                "model %s: version %s loaded as it is, without the safety checks: trusted (%s)",
                served.name,
                loaded.version,
                loaded.model.trusted_by,
            )
        if old is not None:
            asyncio.get_running_loop().create_task(self._drain(old))

    def _resolve(self, served: ServedModel) -> ModelVersion | None:
        ref = served.ref
        if ref.path is not None:
            return None
        return self.registry().resolve(ref)

    def _load_and_warm(
        self, served: ServedModel, target: ModelVersion | None
    ) -> tuple[LoadedModel, float | None]:
        """The model, warmed up with its input example, and one timed call's seconds."""
        started = time.perf_counter()
        ref = served.ref
        if ref.path is not None:
            trust = self.settings.serving.trust_unsafe
            model = load_artifact(
                local_artifact(ref.path, self.settings.resolved_cache_dir(), self.settings.bundle),
                public_key=self.settings.serving.require_signed,
                trust_unsafe=trust,
                trusted_by=f"--trust-unsafe by {current_user()}" if trust else None,
                trusted_keys=self.settings.trusted_keys,
            )
        else:
            assert target is not None
            registry = self.registry()
            path = registry.artifacts.local_path(target.artifact_key)
            model = load_artifact(
                path,
                manifest_sha256=target.manifest_sha256,
                public_key=self.settings.serving.require_signed,
                trust_unsafe=target.trusts_unsafe,  # only as the registry recorded it
                trusted_by=f"registry: {target.trusted_unsafe_by}",
                trusted_keys=self.settings.trusted_keys,
                version=target.version,
            )
        loaded_at = time.perf_counter()
        label = (served.name, "" if target is None else str(target.version))
        metrics.LOAD_SECONDS.labels(*label).set(loaded_at - started)
        example = model.input_example()
        if example is None:
            return model, None
        model.predict_arrays(example)  # warm-up: fail here, not on the first request
        warm_at = time.perf_counter()  # the first call pays for lazy set-up; time the second
        model.predict_arrays(example)
        done = time.perf_counter()
        metrics.WARMUP_SECONDS.labels(*label).set(done - loaded_at)
        return model, done - warm_at

    def _batcher_for(
        self, served: ServedModel, model: LoadedModel, runner: PredictRunner
    ) -> AdaptiveBatcher | None:
        base: ServingSettings = self.settings.serving
        spec = served.spec
        enabled = spec.batching if spec.batching is not None else base.batching
        if not enabled or not model.signature.has_batch_axis:
            return None
        delay = (
            spec.max_batch_delay_ms
            if spec.max_batch_delay_ms is not None
            else base.max_batch_delay_ms
        )
        return AdaptiveBatcher(
            served.name,
            runner,
            max_batch_size=_given(spec.max_batch_size, base.max_batch_size),
            max_delay=delay / 1000.0,
            max_queue=_given(spec.max_queue, base.max_queue),
        )

    async def _drain(self, old: LoadedVersion) -> None:
        """Wait for requests holding ``old`` to finish, then let it go."""
        while old.inflight > 0:
            await asyncio.sleep(0.01)
        if old.batcher is not None:
            await old.batcher.close()
        logger.info("model %s: unloaded version %s", old.name, old.version)

    async def _poll(self) -> None:
        interval = self.settings.serving.poll_interval_s
        while True:
            await asyncio.sleep(interval)
            for served in list(self.models.values()):
                if served.follows_registry and served.state != "unloaded":
                    async with served.lock:
                        await self._swap(served)

    def registry(self) -> Registry:
        """The registry the models come from (and API keys are checked against); opened once."""
        with self._registry_lock:  # worker threads may ask at the same time
            if self._registry is None:
                self._registry = Registry(self.settings)
            return self._registry

    async def run_in_thread(self, fn: Callable[[], T]) -> T:
        """Run blocking work (registry queries) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def _run(self, fn: Any, *args: Any) -> Any:  # Any: a sync callable and its result
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def status(self, served: ServedModel) -> dict[str, Any]:
        """What the repository index and the metadata report about one model."""
        current = served.current
        info: dict[str, Any] = {"name": served.name, "ref": served.spec.ref, "state": served.state}
        if current is not None:
            info["version"] = current.version
            info["load_seconds"] = round(current.load_seconds, 4)
            if current.batcher is not None:
                stats = current.batcher.stats
                info["batching"] = {
                    "batches": stats.batches,
                    "requests": stats.requests,
                    "largest_batch": stats.largest_batch,
                    "queued": current.batcher.queued,
                }
        if served.error:
            info["error"] = client_reason(served.error)
        return info
