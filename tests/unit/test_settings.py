"""Every setting has bounds; a value out of range, from a flag, the environment or a
deployment file, is one InvalidInput naming the setting, the value and the rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelport.config import Settings
from modelport.errors import InvalidInput
from modelport.serving.deployment import load_deployment


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PORT", "-1", r"serving\.port = '-1': must be greater than or equal to 0"),
        ("PORT", "70000", r"serving\.port = '70000': must be less than or equal to 65535"),
        ("WORKERS", "0", r"serving\.workers = '0': must be greater than or equal to 1"),
        ("MAX_QUEUE", "-5", r"serving\.max_queue = '-5': must be greater than or equal to 1"),
        ("REQUEST_TIMEOUT_S", "-1", r"serving\.request_timeout_s = '-1': must be greater than 0"),
        ("POLL_INTERVAL_S", "0", r"serving\.poll_interval_s = '0': must be greater than or equal"),
        ("MAX_BATCH_SIZE", "0", r"serving\.max_batch_size = '0': must be greater than or equal"),
        ("LOG_SAMPLE_RATE", "2", r"serving\.log_sample_rate = '2': must be less than or equal"),
    ],
)
def test_out_of_range_environment_values_are_one_clear_error(
    variable: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"MODELPORT_SERVING__{variable}", value)
    with pytest.raises(InvalidInput, match=message + rf".*\(MODELPORT_SERVING__{variable}\)"):
        Settings()


def test_out_of_range_constructor_values_too() -> None:
    with pytest.raises(InvalidInput, match=r"setting bundle\.max_ratio = 0\.5: must be greater"):
        Settings(bundle={"max_ratio": 0.5})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("serving: {max_queue: 0}\n", r"setting serving\.max_queue = 0: must be greater"),
        ("models: [{ref: churn, max_queue: 0}]\n", r"models\.0\.max_queue = 0: must be greater"),
        ("models: [{ref: churn, max_batch_size: -1}]\n", r"models\.0\.max_batch_size = -1"),
        ("serving: {port: -1}\n", r"setting serving\.port = -1: must be greater than or equal"),
        ("serving: {max_qeue: 5}\n", r"serving\.max_qeue: unknown setting \(known: host, port"),
    ],
)
def test_deployment_files_name_the_bad_value(text: str, message: str, tmp_path: Path) -> None:
    """``max_queue: 0`` used to mean the default, 1024, through an ``or``."""
    file = tmp_path / "deployment.yaml"
    file.write_text(text)
    with pytest.raises(InvalidInput, match=message):
        load_deployment(file)
