"""The dashboard in a real headless Chromium (Debian's ``chromium`` + ``chromedriver``,
installed by ``make test``), driven by Selenium against a real server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import modelport

from ._churn import churn_frame, churn_home, v2_body, wait_for, written
from ._server import running_server

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return churn_home(tmp_path)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("chromium and chromedriver are missing: run `make test`, which installs them")
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument("--window-size=1400,2000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: WebDriver) -> list[str]:
    entries = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [e["message"] for e in entries if e["level"] == "SEVERE"]


def test_dashboard_shows_models_charts_drift_and_quality(
    home: Path, browser: WebDriver, tmp_path: Path
) -> None:
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        registry.set_alias("churn", "production", 1)
    deployment = home / "deployment.yaml"
    deployment.write_text(
        "serving: {chart_interval_s: 0.5}\n"
        "models:\n"
        "  - {ref: churn@production, name: churn, log_sample_rate: 1}\n"
    )
    frame, truth = churn_frame(400, seed=11)
    shifted = frame.assign(support_calls=frame["support_calls"] + 4.0)
    with running_server(home, "--config", str(deployment)) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for i, start in enumerate(range(0, 400, 20)):
                r = client.post(
                    "/v2/models/churn/infer",
                    json=v2_body(shifted[start : start + 20]),
                    headers={"X-Request-ID": f"batch-{i}"},
                )
                assert r.status_code == 200, r.text
                client.post("/v2/models/churn/infer", json={"inputs": []})  # a 400, for errors
            wait_for(lambda: written(server.url, "churn") == 20)
            labels = [
                {"id": f"batch-{i}", "label": truth[i * 20 : i * 20 + 20].tolist()}
                for i in range(20)
            ]
            assert (
                client.post("/v2/models/churn/feedback", json={"labels": labels}).json()["accepted"]
                == 20
            )

        browser.get(f"{server.url}/ui/")
        wait = WebDriverWait(browser, 30, poll_frequency=0.2)
        section = wait.until(
            lambda d: d.find_element(By.CSS_SELECTOR, 'section[data-model="churn"]')
        )
        # The request charts fill in as the server samples its metrics (every 0.5 s here).
        charts = ("rate", "errors", "latency")
        wait.until(
            lambda d: all(
                len(d.find_elements(By.CSS_SELECTOR, f'[data-chart="{c}"] circle.dot')) > 0
                for c in charts
            )
        )
        section = browser.find_element(By.CSS_SELECTOR, 'section[data-model="churn"]')
        peaks = {
            c: float(
                section.find_element(By.CSS_SELECTOR, f'[data-chart="{c}"]').get_attribute(
                    "data-max"
                )
                or 0
            )
            for c in charts
        }
        assert peaks["rate"] > 0  # 40 requests went through in the charted hour
        assert 0 < peaks["errors"] <= 100  # half of them were refused (a percentage)
        assert peaks["latency"] > 0  # milliseconds
        text = section.text
        assert "serving version 1" in text
        assert "production → 1" in text
        assert "versions: 1 (ready)" in text
        features = section.find_elements(By.CSS_SELECTOR, ".feature")
        names = [f.get_attribute("data-feature") for f in features]
        assert names[0] == "support_calls"  # the drifting feature comes first
        assert features[0].get_attribute("data-drifted") == "true"
        assert {f.get_attribute("data-drifted") for f in features[1:]} == {"false"}
        assert set(names) == {"tenure_months", "monthly_spend", "support_calls", "plan"}
        bars = features[0].find_elements(By.CSS_SELECTOR, "rect.bar.ref")
        assert len(bars) == len(features[0].find_elements(By.CSS_SELECTOR, "rect.bar.live")) > 1
        quality = section.find_element(By.CSS_SELECTOR, ".quality")
        assert quality.get_attribute("data-task") == "classification"
        assert "(400 labels)" in quality.text
        assert "accuracy" in quality.text
        shot = tmp_path / "dashboard.png"
        assert browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        assert console_errors(browser) == []


def test_dashboard_asks_for_a_key_when_auth_is_on(
    home: Path, browser: WebDriver, tmp_path: Path
) -> None:
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        _, token = registry.create_key("dashboard", "read")
    with running_server(home, "churn", "--auth") as server:
        assert httpx.get(f"{server.url}/ui/api/models").status_code == 401
        browser.get(f"{server.url}/ui/")
        wait = WebDriverWait(browser, 30, poll_frequency=0.2)
        form = wait.until(lambda d: d.find_element(By.ID, "login"))
        wait.until(lambda d: form.is_displayed())
        assert browser.find_elements(By.CSS_SELECTOR, "section.model") == []
        browser.find_element(By.ID, "key").send_keys(token)
        form.submit()
        section = wait.until(
            lambda d: d.find_element(By.CSS_SELECTOR, 'section[data-model="churn"]')
        )
        assert "serving version 1" in section.text
        assert not form.is_displayed()
        browser.save_screenshot(str(tmp_path / "dashboard-auth.png"))
        assert console_errors(browser) == []


def test_the_docs_page_renders_and_shows_how_to_call_each_model(
    home: Path, browser: WebDriver, tmp_path: Path
) -> None:
    """Swagger UI 4 reads OpenAPI 3.0 only: with a 3.1 document it showed an error instead of
    the routes. Each served model's inference route lists its inputs, with an example body."""
    with running_server(home, "churn") as server:
        doc = httpx.get(f"{server.url}/openapi.json").json()
        assert doc["openapi"].startswith("3.0.")
        op = doc["paths"]["/v2/models/churn/infer"]["post"]
        assert "| `plan` | BYTES | [-1] |" in op["description"]
        example = op["requestBody"]["content"]["application/json"]["example"]
        assert [t["name"] for t in example["inputs"]] == [
            "tenure_months", "monthly_spend", "support_calls", "plan"
        ]  # fmt: skip
        assert httpx.post(f"{server.url}/v2/models/churn/infer", json=example).status_code == 200
        browser.get(f"{server.url}/docs")
        wait = WebDriverWait(browser, 30, poll_frequency=0.2)
        block = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".opblock-tag-section"))
        page = browser.find_element(By.TAG_NAME, "body").text
        assert "does not specify a valid version field" not in page
        assert "Inference: churn version 1, inputs tenure_months, monthly_spend" in page, page
        assert block.is_displayed()
        browser.save_screenshot(str(tmp_path / "docs.png"))
