"""The Ray engine: not built yet (see the batch issue's closing note)."""

from __future__ import annotations

from pathlib import Path

from modelport.batch import formats
from modelport.batch.job import BatchResult, JobSpec
from modelport.errors import InvalidInput
from modelport.packaging import LoadedModel


def run_ray(
    model: LoadedModel,
    spec: JobSpec,
    source: formats.Source,
    sink: Path,
    result: BatchResult,
    *,
    address: str | None,
    overwrite: bool,
    max_reject_fraction: float,
) -> BatchResult:
    raise InvalidInput("the Ray engine is not available yet; use --engine local")
