"""The protocol-free request path: resolve the model, check the signature, batch, predict.

Every wire protocol (``v2``, ``tfserving``, ``mlflow``) decodes its body into data that
``Signature.coerce`` accepts, calls :meth:`DataPlane.infer`, and encodes the result. All
the logic, and every error a client can cause, lives here once.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from modelport.config import ServingSettings
from modelport.errors import ModelportError, PredictionFailed
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
        loaded: LoadedVersion,
        data: object,
        *,
        outputs: Collection[str] | None = None,
    ) -> InferenceResult:
        """Check ``data`` against ``loaded``'s signature and predict, within the timeout.

        ``loaded`` comes from :meth:`model`, which a protocol calls first: it needs the
        signature to decode the body, and an unknown model is refused before the body is read.
        """
        inputs = loaded.model.signature.coerce(data)
        loaded.model.check_outputs(outputs)
        try:
            result = await loaded.predict(inputs, outputs, self.settings.request_timeout_s)
        except ModelportError:
            raise
        except Exception as exc:  # the model rejected values the signature let through
            raise PredictionFailed(loaded.name, exc) from exc
        return InferenceResult(loaded.name, loaded.version, result)
