"""Monitoring routes: ``/metrics``, drift, live quality, feedback, and the dashboard.

- ``GET /metrics``: Prometheus text (every worker's values summed; see
  :mod:`modelport.monitoring.metrics`).
- ``GET /v2/models/{name}/drift?window=1h&alpha=0.01&psi=0.1``: per-feature drift of the
  served version's logged inputs against its reference profile, plus prediction drift.
- ``GET /v2/models/{name}/quality?window=1h&buckets=12``: accuracy / F1 / AUC or MAE / RMSE
  from the labels posted so far, per version and per bucket of the window.
- ``POST /v2/models/{name}/feedback``: ``{"id": <request id>, "label": ...}``, or
  ``{"labels": [...]}``; answers which ids were stored and which were never logged. It first
  has this process's prediction log write out what is queued, so a label posted right after
  its prediction finds it.
- ``/ui/``: the dashboard (static files, no build step), fed by ``GET /ui/api/models``;
  ``GET /ui/api/config`` (open) tells the page whether to ask for an API key first. A
  version whose stored files no longer match their checksums is listed as ``corrupted``,
  with the reason (see :class:`ArtifactChecks`).

Database work runs in the model manager's threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from modelport.artifact.checksums import verify_files
from modelport.artifact.manifest import MANIFEST_FILE, parse_manifest, read_manifest_bytes
from modelport.errors import ArtifactCorrupted, InvalidInput, ModelportError, RegistryUnavailable
from modelport.monitoring import labels, live
from modelport.monitoring.drift import DriftThresholds
from modelport.monitoring.history import MetricsHistory
from modelport.monitoring.metrics import CONTENT_TYPE, ServerMetrics
from modelport.monitoring.prediction_log import PredictionLogger
from modelport.registry import ArtifactStore, ModelVersion
from modelport.serving._http import Call, json_response
from modelport.serving.auth import sees, visible_model
from modelport.serving.dataplane import DataPlane
from modelport.serving.manager import ModelManager
from modelport.serving.served import ServedModel, client_reason

logger = logging.getLogger(__name__)

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
_MAX_FEEDBACK_BYTES = 16 * 1024 * 1024
_CHECK_WAIT_S = 1.0
"""How long the dashboard's data waits for files being hashed before it says "verifying"."""
_MAX_VERDICTS = 10_000
_FEEDBACK_FLUSH_S = 5.0
"""Longest feedback waits for the prediction log to write out what was queued before it
(the writer is behind only when the database is slow or locked)."""


class Monitor:
    """The server's monitoring state: metric history, prediction log, periodic checks.

    Drift and quality computed here (by a route or the periodic check) are published into
    ``metrics``, the app's gauges.
    """

    def __init__(
        self, plane: DataPlane, metrics: ServerMetrics, history_interval: float = 10.0
    ) -> None:
        self.plane = plane
        self.metrics = metrics
        self.history = MetricsHistory(metrics, history_interval)
        self.checks = ArtifactChecks()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Start the prediction log writer and the periodic task; stop them after."""
        manager = self.plane.manager
        if any(rate > 0 for rate in self.plane.sample_rates.values()):
            predictions = await manager.run_in_thread(lambda: manager.registry().predictions)
            self.plane.prediction_log = PredictionLogger(
                predictions, max_queue=self.plane.settings.log_queue, metrics=self.metrics
            )
        task = asyncio.get_running_loop().create_task(self._periodic())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.checks.close()
            log, self.plane.prediction_log = self.plane.prediction_log, None
            if log is not None:
                await asyncio.get_running_loop().run_in_executor(None, log.close)

    async def _periodic(self) -> None:
        checks_every = self.plane.settings.monitor_interval_s
        since_check = 0.0
        while True:
            self.metrics.record_process()
            await self.plane.manager.run_in_thread(self.history.sample)
            if since_check >= checks_every:
                since_check = 0.0
                await self._check_all()
            await asyncio.sleep(self.history.interval)
            since_check += self.history.interval

    async def _check_all(self) -> None:
        """Recompute drift and quality of every logged model, which updates their gauges:
        from the newest ``live.CHECK_ENTRIES`` entries of each window, so a busy log costs
        the check no more than that."""
        window = live.parse_window("1h")
        most = live.CHECK_ENTRIES
        for name, rate in self.plane.sample_rates.items():
            if rate <= 0:
                continue
            try:
                await self.drift(name, window, DriftThresholds(), most)
                await self.quality(name, window, 12, most)
            except RegistryUnavailable:  # said by the manager's outage log; next time
                return
            except Exception:  # a check must never stop the server
                logger.exception("monitoring check of %s failed", name)

    async def drift(
        self, name: str, window: Any, thresholds: DriftThresholds, most: int | None = None
    ) -> dict[str, Any]:
        loaded = self.plane.model(name)
        manager = self.plane.manager
        body = dict(
            await manager.run_in_thread(
                lambda: live.drift_summary(
                    manager.registry().predictions,
                    name,
                    loaded.version,
                    loaded.model.signature,
                    loaded.model.reference_profile(),
                    window,
                    thresholds,
                    most,
                )
            )
        )
        for feature in body["features"]:
            self.metrics.set_drift(
                name, loaded.version, feature["feature"], feature["drifted"], feature["psi"]
            )
        return body

    async def quality(
        self, name: str, window: Any, buckets: int, most: int | None = None
    ) -> dict[str, Any]:
        self.plane.manager.served(name)  # 404 for a model not served
        manager = self.plane.manager
        body = dict(
            await manager.run_in_thread(
                lambda: live.quality_summary(
                    manager.registry().predictions, name, window, buckets, most
                )
            )
        )
        for version, scores in body["versions"].items():
            for metric, value in scores.items():
                if metric != "n" and value is not None:
                    self.metrics.set_live_quality(name, version, metric, value)
        return body

    async def overview(self, shown: Callable[[str], bool] = lambda name: True) -> dict[str, Any]:
        """What the dashboard shows: each served model ``shown`` accepts, its versions (each
        with the state of its stored files) and aliases, its charts."""
        manager = self.plane.manager
        models = []
        pending: list[tuple[dict[str, Any], Future[str | None]]] = []
        for name, served in manager.models.items():
            if not shown(name):
                continue
            entry: dict[str, Any] = dict(manager.status(served))
            entry.pop("batching", None)
            entry["sample_rate"] = self.plane.sample_rates.get(name, 0.0)
            if served.ref.name is not None:
                try:
                    lineup, hashing = await manager.run_in_thread(
                        partial(_lineup, manager, served, self.checks)
                    )
                    entry.update(lineup)
                    pending.extend(hashing)
                except Exception as exc:  # a registry hiccup must not blank the dashboard
                    entry["registry_error"] = str(exc)
            entry["series"] = self.history.series(name)
            models.append(entry)
        # Files being hashed (new or changed since their last check) usually take
        # milliseconds; a big model's are still "verifying" after the wait, and its verdict
        # comes with a later refresh. Polled, so the hashing thread never calls into the loop.
        deadline = time.monotonic() + _CHECK_WAIT_S
        while any(not f.done() for _, f in pending) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for item, future in pending:
            if future.done() and not future.cancelled():  # cancelled: the server is stopping
                _apply_verdict(item, future.result())
            else:
                item["status"] = "verifying"
        return {"models": models, "interval_s": self.history.interval}


def handlers(monitor: Monitor) -> dict[str, Callable[..., Any]]:
    """The monitoring routes' handlers, by their key in the route table, bound to ``monitor``.

    Any: a ``mount``'s handler is an ASGI app (the dashboard's files), the others endpoints.
    """

    async def metrics_text(request: Request) -> Response:
        names = monitor.plane.manager.models
        only = None if visible_model(request) is None else {n for n in names if sees(request, n)}
        serving = {
            name: "" if s.current.version is None else str(s.current.version)
            for name, s in monitor.plane.manager.models.items()
            if s.current is not None
        }
        loop = asyncio.get_running_loop()
        body = await loop.run_in_executor(None, monitor.metrics.exposition, only, serving)
        return Response(body, media_type=CONTENT_TYPE)

    async def drift(request: Request) -> Response:
        params = request.query_params
        thresholds = DriftThresholds(
            alpha=_number(params.get("alpha"), "alpha", 0.01, 0.0, 1.0),
            psi=_number(params.get("psi"), "psi", 0.1, 0.0, 100.0),
            min_samples=int(_number(params.get("min_samples"), "min_samples", 100, 1, 1e9)),
        )
        window = live.parse_window(params.get("window", "1h"))
        return json_response(await monitor.drift(request.path_params["name"], window, thresholds))

    async def quality(request: Request) -> Response:
        params = request.query_params
        window = live.parse_window(params.get("window", "1h"))
        buckets = int(_number(params.get("buckets"), "buckets", 12, 1, 500))
        return json_response(await monitor.quality(request.path_params["name"], window, buckets))

    async def feedback(request: Request) -> Response:
        name = request.path_params["name"]
        served = monitor.plane.manager.served(name)  # 404 before reading the body
        # The one body reader the inference routes use: the same limits and refusals.
        body = await Call(request.scope, request.receive, name, None, _MAX_FEEDBACK_BYTES).body()
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"invalid JSON: {exc}") from None
        pairs = labels.parse_feedback(doc)
        if served.current is not None and served.current.model.signature.outputs:
            dtype = served.current.model.signature.outputs[0].dtype
            labels.check_label_kinds(name, pairs, dtype)
        manager = monitor.plane.manager
        log = monitor.plane.prediction_log

        def store() -> list[str]:
            if log is not None:  # entries queued before this label: written first
                log.flush(_FEEDBACK_FLUSH_S)
            predictions = manager.registry().predictions
            rows = predictions.count_logged_rows(name, [rid for rid, _ in pairs])
            for rid, label in pairs:  # all or nothing, as for a label of the wrong kind
                if rid in rows and (problem := labels.count_problem(rid, label, rows[rid])):
                    raise InvalidInput(problem)
            return predictions.add_feedback(name, pairs)

        unknown = await manager.run_in_thread(store)
        return json_response(
            {
                "model": name,
                "accepted": len({rid for rid, _ in pairs}) - len(unknown),
                "unknown_ids": unknown,
            }
        )

    async def ui_models(request: Request) -> Response:
        return json_response(await monitor.overview(lambda name: sees(request, name)))

    async def ui_config(request: Request) -> Response:
        return json_response({"auth": monitor.plane.settings.auth})

    async def ui_root(request: Request) -> Response:
        return RedirectResponse("/ui/")

    return {
        "metrics": metrics_text,
        "drift": drift,
        "quality": quality,
        "feedback": feedback,
        "ui_models": ui_models,
        "ui_config": ui_config,
        "ui_root": ui_root,
        "ui_files": StaticFiles(directory=UI_DIR, html=True),
    }


def _lineup(
    manager: ModelManager, served: ServedModel, checks: ArtifactChecks
) -> tuple[dict[str, Any], list[tuple[dict[str, Any], Future[str | None]]]]:
    """The registry's versions and aliases of the model ``served`` follows, each ready
    version checked against its stored files; and the checks still hashing files."""
    name = served.ref.name
    assert name is not None
    registry = manager.registry()
    versions = []
    pending: list[tuple[dict[str, Any], Future[str | None]]] = []
    for v in registry.list_versions(name).items:
        item: dict[str, Any] = {"version": v.version, "status": v.status}
        if v.error and v.status == "failed":
            item["error"] = client_reason(v.error)
        if v.is_ready:
            verdict = checks.check(registry.artifacts, v)
            if isinstance(verdict, Future):
                pending.append((item, verdict))
            else:
                _apply_verdict(item, verdict)
        versions.append(item)
    return {"versions": versions, "aliases": registry.list_aliases(name)}, pending


def _apply_verdict(item: dict[str, Any], reason: str | None) -> None:
    if reason is not None:
        item["status"], item["error"] = "corrupted", reason


_Fingerprint = tuple[str | None, tuple[tuple[str, int, int, int, int], ...]]


class ArtifactChecks:
    """Whether each ready version's stored files still match the checksums they were
    registered with, so the dashboard never lists a tampered version as ready.

    The registry's ``ready`` is what was true when the version was written; a load verifies
    every file again, but a version that is not loaded is never looked at. Hashing every file
    of every version on each refresh (every 5 s per open dashboard) would read gigabytes for
    big models, and would do it on the threads that also run predictions. So each check is:

    - on every refresh, cheaply: the manifest's SHA-256 against the registry's record (the
      manifest lists every file's SHA-256, so this pins the whole artifact), and an ``lstat``
      of each file it lists (missing, a link, or not a plain file is a verdict at once);
    - the full SHA-256 of every file only when the version is new to this server or its
      files' ``(size, mtime, ctime, inode)`` changed since they were last hashed, in one
      background thread of its own. ``ctime`` is set by the kernel on any write and cannot
      be set back by the user (as ``touch -d`` does ``mtime``), and a file replaced by a
      rename has a new inode, so editing a file in any of those ways means hashing it again.

    A verdict is remembered per artifact key with that fingerprint. The artifacts are read
    where the store keeps them (``local_path``, the local folder store reads in place).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._verdicts: dict[str, tuple[_Fingerprint, str | None]] = {}
        self._running: dict[str, tuple[_Fingerprint, Future[str | None]]] = {}
        self._pool: ThreadPoolExecutor | None = None

    def check(self, store: ArtifactStore, version: ModelVersion) -> str | Future[str | None] | None:
        """Why ``version``'s stored artifact is not intact (None when it is), or a future of
        that answer while its files are being hashed."""
        key = version.artifact_key
        try:
            path = store.local_path(key)
            data = read_manifest_bytes(path)
            if hashlib.sha256(data).hexdigest() != version.manifest_sha256:
                raise ArtifactCorrupted(
                    MANIFEST_FILE, "sha256 does not match the registry's record"
                )
            files = parse_manifest(data).files
            fingerprint = (
                version.manifest_sha256,
                tuple(_stat(path, rel) for rel in sorted(files)),
            )
        except ModelportError as exc:
            return client_reason(str(exc))
        with self._lock:
            known = self._verdicts.get(key)
            if known is not None and known[0] == fingerprint:
                return known[1]
            running = self._running.get(key)
            if running is not None and running[0] == fingerprint:
                return running[1]
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="modelport-verify")
            future = self._pool.submit(self._verify, key, path, files, fingerprint)
            self._running[key] = (fingerprint, future)
            return future

    def _verify(
        self, key: str, path: Path, files: Mapping[str, str], fingerprint: _Fingerprint
    ) -> str | None:
        reason: str | None = None
        try:
            verify_files(path, files)
        except ModelportError as exc:
            reason = client_reason(str(exc))
        except Exception as exc:  # unreadable, or any surprise: not known to be intact
            if not isinstance(exc, OSError):
                logger.exception("checking the files of artifact %s failed", key)
            reason = client_reason(f"the artifact's files could not be checked: {exc}")
        with self._lock:
            self._verdicts.pop(key, None)  # re-inserted last: the oldest go first
            self._verdicts[key] = (fingerprint, reason)
            while len(self._verdicts) > _MAX_VERDICTS:
                del self._verdicts[next(iter(self._verdicts))]
            if key in self._running and self._running[key][0] == fingerprint:
                del self._running[key]
        return reason

    def close(self) -> None:
        """Stop hashing: what is queued is dropped, a file being read finishes."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def _stat(root: Path, rel: str) -> tuple[str, int, int, int, int]:
    try:
        st = (root / rel).lstat()
    except FileNotFoundError:
        raise ArtifactCorrupted(rel, "file is missing") from None
    except OSError as exc:
        raise ArtifactCorrupted(rel, f"cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise ArtifactCorrupted(rel, "is not a plain file")
    return (rel, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _number(text: str | None, what: str, default: float, low: float, high: float) -> float:
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(f"{what} {text[:40]!r} is not a number") from None
    if not low <= value <= high:
        raise InvalidInput(f"{what} must be between {low:g} and {high:g}")
    return value
