"""The model manager: which versions are in memory, and how they are swapped without downtime.

A served name follows its ref. ``churn@production`` and ``churn`` (latest ready) are polled
every ``poll_interval_s`` (and on ``load`` through the repository API); ``churn/3`` and paths
are pinned. On PostgreSQL an alias change is also announced by the registry
(:mod:`~modelport.serving.alias_events`), and a served ``name@alias`` swaps at once.
A swap loads and warms the new version beside the old one (in a worker thread, so serving
goes on), switches ``current`` in one assignment on the event loop, lets requests
already holding the old version finish, then drops it. If the new version fails to load or
warm up, the old one keeps serving and the failure stays in ``error`` until a later swap
succeeds.

With several worker processes, the :class:`~modelport.serving.worker_board.WorkerBoard`
keeps them one server: a loaded version waits in ``next`` until every worker holds it, then
all answer with it from the same instant (each request reads the committed version); a
repository load or unload sent to one worker is followed by all of them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from modelport._identity import current_user
from modelport.config import GPU_BATCH_DELAY_MS, ServingSettings, Settings
from modelport.errors import (
    ModelNotFound,
    ModelNotReady,
    ModelportError,
    VersionNotFound,
)
from modelport.monitoring.metrics import ServerMetrics
from modelport.packaging import LoadedModel
from modelport.registry import ModelVersion, Registry
from modelport.registry.registry import load_local
from modelport.serving import alias_events
from modelport.serving._outage import RegistryOutage
from modelport.serving.batcher import AdaptiveBatcher
from modelport.serving.deployment import ModelSpec
from modelport.serving.runner import PredictRunner
from modelport.serving.served import LoadedVersion, ServedModel, State, client_reason
from modelport.serving.worker_board import LOADING, NONE, WATCH_SECONDS, WorkerBoard, encode

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _given(value: int | None, default: int) -> int:
    """A per-model override when one was given (``0`` included: validated, not ignored)."""
    return default if value is None else value


class ModelManager:
    """Loads, swaps, drains and unloads served models. All methods run on the event loop."""

    def __init__(
        self,
        settings: Settings,
        specs: list[ModelSpec],
        board: WorkerBoard | None = None,
        *,
        metrics: ServerMetrics,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.models: dict[str, ServedModel] = {
            s.served_name: ServedModel(s.served_name, s, i) for i, s in enumerate(specs)
        }
        self.board = board if board is not None else WorkerBoard.in_memory(len(specs))
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="modelport-predict")
        # Registry work and model loads get threads of their own: a registry that takes
        # seconds to fail (a cut network) must not hold the threads predictions run in.
        self._registry_executor = ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="modelport-registry"
        )
        self.outage = RegistryOutage()
        """Whether the registry is reachable, as this server's calls found it."""
        self._registry: Registry | None = None
        self._registry_lock = threading.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._listener: alias_events.AliasListener | None = None
        self._followers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Load every model (failures are recorded, not raised), then start polling.

        Each model starts at the version the other workers already answer with, if any;
        else once every worker's first load is over, they commit the version they agree on.
        """
        self.board.join()
        await asyncio.gather(*(self._start_one(served) for served in self.models.values()))
        loop = asyncio.get_running_loop()
        if any(m.follows_registry for m in self.models.values()):
            self._tasks.append(loop.create_task(self._poll()))
        self._listen_for_aliases(loop)
        if self.board.shared:
            self._tasks.append(loop.create_task(self._watch_board()))

    async def _start_one(self, served: ServedModel) -> None:
        board, i = self.board, served.index
        served.seen_epoch = board.epoch(i)
        if board.unloaded(i):
            served.state = "unloaded"
            return
        board.report(i, LOADING)
        committed = board.committed(i)
        async with served.lock:
            await self._swap(served, pinned=committed if committed > 0 else None)
        while board.committed(i) == NONE and board.waiting_for_first_load(i):
            await asyncio.sleep(WATCH_SECONDS)
        board.try_commit(i)
        self._promote(served)

    async def stop(self) -> None:
        """Stop polling and release every model."""
        for task in [*self._tasks, *self._followers]:
            task.cancel()
        if self._listener is not None:
            await asyncio.to_thread(self._listener.stop)
        self.board.close()
        for served in self.models.values():
            for loaded in (served.current, served.next):
                if loaded is not None and loaded.batcher is not None:
                    await loaded.batcher.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._registry_executor.shutdown(wait=False, cancel_futures=True)
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
        """The version answering for ``name``; 404 if unknown, 503 while not ready.

        Called for every request: the committed version is read from the board each time, so
        no worker answers with a version the others have left, or after an unload.
        """
        served = self.served(name)
        if served.next is not None:  # switches once the board committed it
            self._promote(served)
        current = served.current
        if current is None or self.board.committed(served.index) == NONE:
            raise ModelNotReady(name, self._reason(served))
        if version is not None and version != current.version:
            raise VersionNotFound(name, version)
        return current

    def state(self, served: ServedModel) -> State:
        """Whether ``served`` answers requests, as every worker sees it."""
        self._promote(served)
        if self.board.unloaded(served.index):
            return "unloaded"
        if served.current is not None and self.board.committed(served.index) != NONE:
            return "ready"
        if served.current is not None or served.next is not None:
            return "loading"  # loaded here, not yet by every worker
        return served.state if served.state != "ready" else "loading"

    async def load(self, name: str) -> ServedModel:
        """Resolve the model's ref now and swap to its version if it changed (on every
        worker: this returns once all of them have tried).

        Raises :class:`RegistryUnavailable` when the registry could not be reached (the
        version answering, if any, goes on answering).
        """
        served = self.served(name)
        async with served.lock:
            epoch = served.seen_epoch = self.board.command(served.index, unload=False)
            failure = await self._swap(served)
            self._saw(served, epoch)
        await self._wait_for_workers(served, epoch)
        if failure is not None and (unavailable := self.outage.check(failure)) is not None:
            raise unavailable from failure
        return served

    async def unload(self, name: str) -> ServedModel:
        """Stop serving ``name`` until the next ``load`` (on every worker, at once)."""
        served = self.served(name)
        async with served.lock:
            epoch = served.seen_epoch = self.board.command(served.index, unload=True)
            await self._drop(served)
            self._saw(served, epoch)
        await self._wait_for_workers(served, epoch)
        return served

    async def _drop(self, served: ServedModel) -> None:
        old = [v for v in (served.current, served.next) if v is not None]
        served.current, served.next, served.state = None, None, "unloaded"
        self.board.report(served.index, NONE)
        for version in old:
            await self._drain(version)

    def _saw(self, served: ServedModel, epoch: int) -> None:
        served.seen_epoch = epoch
        ready = served.next or served.current
        self.board.report(
            served.index, NONE if ready is None else encode(ready.version), seen=epoch
        )

    async def _wait_for_workers(self, served: ServedModel, epoch: int) -> None:
        """Until every worker has applied command ``epoch`` (a dead one does not count),
        then commit what they agree on."""
        while not self.board.all_seen(served.index, epoch):
            await asyncio.sleep(WATCH_SECONDS)
        self.board.try_commit(served.index)
        self._promote(served)

    def _promote(self, served: ServedModel) -> None:
        """Make ``next`` the answering version once the board committed it."""
        loaded = served.next
        if loaded is None or self.board.committed(served.index) != encode(loaded.version):
            return
        old, served.current, served.next = served.current, loaded, None
        served.state = "ready"
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

    def _reason(self, served: ServedModel) -> str:
        state = self.state(served)
        reason = client_reason(served.error) if state == "failed" else None
        return reason or state

    async def _swap(self, served: ServedModel, pinned: int | None = None) -> Exception | None:
        """Load the version the ref names (or ``pinned``) beside the one answering, unless
        it is already here; then commit it once every worker holds it. Returns the failure,
        if any (also kept, as clients see it, in ``served.error``)."""
        target: ModelVersion | None = None
        try:
            target = await self._run(self._resolve, served, pinned)
            if served.ref.path is None:
                self.outage.recovered()
            have = served.next or served.current
            if have is not None and target is not None and target.version == have.version:
                served.error = None  # the ref names what is here: no failure to report
                self._ready(served, have)
                return None
            if have is None:
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
            # An outage is said as such (no database address for clients) and logged by
            # self.outage, once a minute; this error then stays the same until it is over.
            unavailable = self.outage.check(exc)
            reason = exc if unavailable is None else unavailable
            served.error = f"loading {served.spec.ref}{version} failed: {reason}"
            have = served.next or served.current
            if have is None:
                served.state = "failed"
            self.board.report(served.index, NONE if have is None else encode(have.version))
            if served.error != previous:  # the poll retries: say it once, not every poll
                logger.error(
                    "model %s: %s (retried every %g s; logged again when the error changes)",
                    served.name,
                    served.error,
                    self.settings.serving.poll_interval_s,
                    exc_info=not isinstance(exc, ModelportError),
                )
            return exc
        superseded, served.next, served.error = served.next, loaded, None
        if superseded is not None:  # loaded here, never committed: a newer one came first
            asyncio.get_running_loop().create_task(self._drain(superseded))
        self._ready(served, loaded)
        return None

    def _ready(self, served: ServedModel, loaded: LoadedVersion) -> None:
        self.board.report(served.index, encode(loaded.version))
        self.board.try_commit(served.index)
        self._promote(served)

    def _resolve(self, served: ServedModel, pinned: int | None = None) -> ModelVersion | None:
        ref = served.ref
        if ref.path is not None:
            return None
        if pinned is not None:  # what the other workers answer with
            assert ref.name is not None
            return self.registry().get_version(ref.name, pinned)
        return self.registry().resolve(ref)

    def _load_and_warm(
        self, served: ServedModel, target: ModelVersion | None
    ) -> tuple[LoadedModel, float | None]:
        """The model, warmed up with its input example, and one timed call's seconds."""
        started = time.perf_counter()
        serving = self.settings.serving
        device = served.spec.device or serving.device
        if served.ref.path is not None:
            model = load_local(
                served.ref.path,
                self.settings,
                require_signed=serving.require_signed,
                trust_unsafe=serving.trust_unsafe,
                trusted_by=f"--trust-unsafe by {current_user()}",
                device=device,
            )
        else:
            assert target is not None
            # the version _resolve found, loaded as it is: no second lookup of the ref
            model = self.registry().load(
                target, require_signed=serving.require_signed, device=device
            )
        loaded_at = time.perf_counter()
        label = (served.name, "" if target is None else str(target.version))
        self.metrics.load_seconds.labels(*label).set(loaded_at - started)
        example = model.input_example()
        if example is None:
            return model, None
        model.predict_arrays(example)  # warm-up: fail here, not on the first request
        warm_at = time.perf_counter()  # the first call pays for lazy set-up; time the second
        model.predict_arrays(example)
        done = time.perf_counter()
        self.metrics.warmup_seconds.labels(*label).set(done - loaded_at)
        return model, done - warm_at

    def _batcher_for(
        self, served: ServedModel, model: LoadedModel, runner: PredictRunner
    ) -> AdaptiveBatcher | None:
        base: ServingSettings = self.settings.serving
        spec = served.spec
        enabled = spec.batching if spec.batching is not None else base.batching
        if not enabled or not model.signature.has_batch_axis:
            return None
        delay = batch_delay_ms(spec, base)
        return AdaptiveBatcher(
            served.name,
            runner,
            max_batch_size=_given(spec.max_batch_size, base.max_batch_size),
            max_delay=delay / 1000.0,
            max_queue=_given(spec.max_queue, base.max_queue),
            metrics=self.metrics,
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
                if served.follows_registry and not self.board.unloaded(served.index):
                    async with served.lock:
                        await self._swap(served)

    def _listen_for_aliases(self, loop: asyncio.AbstractEventLoop) -> None:
        """On PostgreSQL, swap a served ``name@alias`` as soon as an alias of ``name``
        changes; the poll stays as the fallback (and is all there is on SQLite)."""
        uri = self.settings.resolved_registry_uri()
        aliased = [m for m in self.models.values() if m.follows_registry and m.ref.alias]
        if not aliased or not alias_events.listens(uri):
            return

        def changed(name: str) -> None:  # in the listener's thread
            loop.call_soon_threadsafe(self._alias_changed, name)

        self._listener = alias_events.AliasListener(uri, changed)
        self._listener.start()

    def _alias_changed(self, name: str) -> None:
        for served in self.models.values():
            if served.follows_registry and served.ref.alias and served.ref.name == name:
                task = asyncio.get_running_loop().create_task(self._follow_alias(served))
                self._followers.add(task)  # held until done: the loop keeps only weak refs
                task.add_done_callback(self._followers.discard)

    async def _follow_alias(self, served: ServedModel) -> None:
        if self.board.unloaded(served.index):
            return
        async with served.lock:
            await self._swap(served)

    async def _watch_board(self) -> None:
        """Apply repository commands other workers received, and switch to a version the
        board committed even when no request comes to do it (so the old one is let go)."""
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            for served in list(self.models.values()):
                try:
                    await self._follow_board(served)
                except Exception:  # never stop watching; say what went wrong
                    logger.exception("model %s: applying the worker board failed", served.name)

    async def _follow_board(self, served: ServedModel) -> None:
        epoch = self.board.epoch(served.index)
        if epoch > served.seen_epoch:
            async with served.lock:
                served.seen_epoch = epoch
                if self.board.unloaded(served.index):
                    await self._drop(served)
                else:
                    await self._swap(served)
                self._saw(served, epoch)
        self._promote(served)

    def registry(self) -> Registry:
        """The registry the models come from (and API keys are checked against); opened once."""
        with self._registry_lock:  # worker threads may ask at the same time
            if self._registry is None:
                self._registry = Registry(self.settings)
            return self._registry

    async def run_in_thread(self, fn: Callable[[], T]) -> T:
        """Run blocking work (registry queries) off the event loop, never in the threads
        predictions run in. A registry out of reach raises :class:`RegistryUnavailable`."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._registry_executor, fn)
        except Exception as exc:
            unavailable = self.outage.check(exc)
            if unavailable is None or unavailable is exc:
                raise
            raise unavailable from exc

    async def _run(self, fn: Any, *args: Any) -> Any:  # Any: a sync callable and its result
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._registry_executor, fn, *args)

    def status(self, served: ServedModel) -> dict[str, Any]:
        """What the repository index and the metadata report about one model."""
        current = served.current
        info: dict[str, Any] = {
            "name": served.name,
            "ref": served.spec.ref,
            "state": self.state(served),
        }
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


def batch_delay_ms(spec: ModelSpec, base: ServingSettings) -> float:
    """The batching wait for a model: its own, else the server's when set, else a small one
    on a GPU (where a fuller batch costs almost nothing more) and none on the CPU."""
    if spec.max_batch_delay_ms is not None:
        return spec.max_batch_delay_ms
    device = spec.device or base.device
    if "max_batch_delay_ms" not in base.model_fields_set and device.startswith("cuda"):
        return GPU_BATCH_DELAY_MS
    return base.max_batch_delay_ms
