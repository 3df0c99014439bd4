"""The protocol-free request path: resolve the model, check the signature, batch, predict.

Every wire protocol (``v2``, ``tfserving``, ``mlflow``) decodes its body into data that
``Signature.coerce`` accepts, calls :meth:`DataPlane.infer`, and encodes the result. All
the logic, and every error a client can cause, lives here once.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from modelport.config import ServingSettings
from modelport.errors import ModelportError, PredictionFailed, RequestTimeout
from modelport.monitoring.metrics import ServerMetrics
from modelport.monitoring.prediction_log import PredictionLogger
from modelport.serving.manager import ModelManager
from modelport.serving.served import LoadedVersion

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InferenceResult:
    """What a protocol module needs to write a response."""

    name: str
    version: int | None
    outputs: dict[str, np.ndarray]


class DataPlane:
    """The one place that turns decoded input into outputs, shared by every protocol."""

    def __init__(
        self, manager: ModelManager, settings: ServingSettings, metrics: ServerMetrics
    ) -> None:
        self.manager = manager
        self.settings = settings
        self.metrics = metrics
        self.sample_rates = {
            name: served.spec.log_sample_rate
            if served.spec.log_sample_rate is not None
            else settings.log_sample_rate
            for name, served in manager.models.items()
        }
        self.prediction_log: PredictionLogger | None = None
        """Set by the app while it runs, when any model has a sample rate."""

    def model(self, name: str, version: int | None = None) -> LoadedVersion:
        """The loaded version answering for ``name`` (404 unknown, 503 not ready)."""
        return self.manager.get(name, version)

    async def infer(
        self,
        loaded: LoadedVersion,
        data: object,
        *,
        outputs: Collection[str] | None = None,
        request_id: str = "",
    ) -> InferenceResult:
        """Check ``data`` against ``loaded``'s signature and predict, within the timeout.

        ``loaded`` comes from :meth:`model`, which a protocol calls first: it needs the
        signature to decode the body, and an unknown model is refused before the body is read.
        """
        inputs = loaded.model.signature.coerce(data)
        loaded.model.check_outputs(outputs)
        started = time.perf_counter()
        try:
            result = await loaded.predict(inputs, outputs, self.settings.request_timeout_s)
        except RequestTimeout:
            self.metrics.inference_errors.labels(loaded.name, "timeout").inc()
            raise
        except ModelportError:
            raise
        except Exception as exc:  # the model rejected values the signature let through
            self.metrics.inference_errors.labels(loaded.name, "model_error").inc()
            # The client gets the first line; the whole message and traceback stay here.
            logger.warning(
                "model %s failed to predict (request %s)", loaded.name, request_id, exc_info=exc
            )
            raise PredictionFailed(loaded.name, exc) from exc
        rate = self.sample_rates.get(loaded.name, 0.0)
        if self.prediction_log is not None and rate > 0.0 and random.random() < rate:
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            self.prediction_log.offer(
                loaded.name, loaded.version, request_id, elapsed_ms, inputs, result
            )
        return InferenceResult(loaded.name, loaded.version, result)
