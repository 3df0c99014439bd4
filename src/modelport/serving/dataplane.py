"""The protocol-free request path: resolve the model, check the signature, batch, predict.

Every wire protocol (``v2``, ``tfserving``, ``mlflow``) decodes its body into data that
``Signature.coerce`` accepts, calls :meth:`DataPlane.infer`, and encodes the result. All
the logic, and every error a client can cause, lives here once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from modelport.config import ServingSettings
from modelport.errors import ModelportError, PredictionFailed, RequestTimeout
from modelport.serving.manager import LoadedVersion, ModelManager


@dataclass(frozen=True, slots=True)
class InferenceResult:
    """What a protocol module needs to write a response."""

    name: str
    version: int | None
    outputs: dict[str, np.ndarray]


class DataPlane:
    """The one place that turns decoded input into outputs, shared by every protocol."""

    def __init__(self, manager: ModelManager, settings: ServingSettings) -> None:
        self.manager = manager
        self.settings = settings

    def model(self, name: str, version: int | None = None) -> LoadedVersion:
        """The loaded version answering for ``name`` (404 unknown, 503 not ready)."""
        return self.manager.get(name, version)

    async def infer(
        self,
        name: str,
        data: object,
        *,
        version: int | None = None,
        outputs: Collection[str] | None = None,
    ) -> InferenceResult:
        """Check ``data`` against the model's signature and predict, within the timeout."""
        loaded = self.manager.get(name, version)
        inputs = loaded.model.signature.coerce(data)
        loaded.model.check_outputs(outputs)
        timeout = self.settings.request_timeout_s
        try:
            result = await asyncio.wait_for(loaded.predict(inputs, outputs), timeout)
        except TimeoutError:
            raise RequestTimeout(name, timeout) from None
        except ModelportError:
            raise
        except Exception as exc:  # the model rejected values the signature let through
            raise PredictionFailed(name, exc) from exc
        return InferenceResult(name, loaded.version, result)
