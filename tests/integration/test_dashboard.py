"""The dashboard in a real headless Chromium (Debian's ``chromium`` + ``chromedriver``,
installed by ``make test``), driven by Selenium against a real server."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait
from sklearn.linear_model import LogisticRegression

import modelport

from ._churn import churn_frame, churn_home, v2_body, wait_for, written
from ._server import serving

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _waiting(browser: WebDriver) -> WebDriverWait[WebDriver]:
    """Up to 30 s for a condition; an element the page re-rendered while it was read (stale)
    is read again at the next poll rather than failing the wait."""
    return WebDriverWait(
        browser, 30, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException]
    )


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


def svg_texts(element: WebElement) -> list[str]:
    """The text of every SVG ``<text>`` under ``element``, shown or folded away."""
    return [
        (t.get_attribute("textContent") or "").strip()
        for t in element.find_elements(By.CSS_SELECTOR, "svg text")
    ]


CLOCK = re.compile(r"^\d\d:\d\d(:\d\d)?$")


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
    with serving(home, "--config", str(deployment)) as server:
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
        wait = _waiting(browser)
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
        # Every chart has a clock-time axis, a value axis with its unit, and the latest value;
        # the latency chart, with two series, a legend naming them.
        texts = {
            c: svg_texts(section.find_element(By.CSS_SELECTOR, f'[data-chart="{c}"]'))
            for c in charts
        }
        for chart, unit in (("rate", "req/s"), ("errors", "%"), ("latency", "ms")):
            assert any(CLOCK.match(t) for t in texts[chart]), texts[chart]
            assert unit in texts[chart], texts[chart]
            assert "0" in texts[chart], texts[chart]  # the value axis starts at zero
        assert any(re.fullmatch(r"latest [\d.]+ req/s", t) for t in texts["rate"]), texts["rate"]
        assert any(re.fullmatch(r"latest [\d.]+ %", t) for t in texts["errors"])
        assert any(re.fullmatch(r"p50 [\d.]+ ms", t) for t in texts["latency"]), texts["latency"]
        assert any(re.fullmatch(r"p99 [\d.]+ ms", t) for t in texts["latency"])
        text = section.text
        assert "serving version 1" in text
        assert "production → 1" in text
        wait.until(lambda d: "versions: 1 (ready)" in d.find_element(By.TAG_NAME, "main").text)
        features = section.find_elements(By.CSS_SELECTOR, ".feature")
        names = [f.get_attribute("data-feature") for f in features]
        assert names[0] == "support_calls"  # the drifting feature comes first
        assert features[0].get_attribute("data-drifted") == "true"
        assert {f.get_attribute("data-drifted") for f in features[1:]} == {"false"}
        assert set(names) == {"tenure_months", "monthly_spend", "support_calls", "plan"}
        bars = features[0].find_elements(By.CSS_SELECTOR, "rect.bar.ref")
        assert len(bars) == len(features[0].find_elements(By.CSS_SELECTOR, "rect.bar.live")) > 1
        assert features[0].is_displayed()
        # The features without drift are folded away, and named in the fold's summary.
        fold = section.find_element(By.CSS_SELECTOR, "details.fold")
        assert fold.find_element(By.TAG_NAME, "summary").text == "3 features without drift"
        assert not features[1].is_displayed()
        # Categorical bars are labelled with their categories; numeric ones with bin edges
        # and every histogram says its value axis is a share of rows.
        plan = section.find_element(By.CSS_SELECTOR, '[data-feature="plan"]')
        assert {"basic", "plus", "pro", "other"} <= set(svg_texts(plan))
        calls = svg_texts(features[0])
        assert "% of rows" in calls
        assert {"reference", "live"} <= set(calls)
        quality = section.find_element(By.CSS_SELECTOR, ".quality")
        assert quality.get_attribute("data-task") == "classification"
        assert "(400 labels)" in quality.text
        assert "version 1: 400 of 400 logged rows labelled" in quality.text
        assert "accuracy" in quality.text
        quality_texts = svg_texts(quality.find_element(By.CSS_SELECTOR, '[data-chart="quality"]'))
        assert any(CLOCK.match(t) for t in quality_texts)
        assert any(re.fullmatch(r"latest [\d.]+ %", t) for t in quality_texts), quality_texts
        shot = tmp_path / "dashboard.png"
        assert browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        assert console_errors(browser) == []


def test_a_model_of_many_plain_features_shows_the_drifting_one_and_folds_the_rest(
    tmp_path: Path, browser: WebDriver
) -> None:
    """A model fed one ``[-1, 30]`` array has 30 features, ``input[0]`` to ``input[29]``:
    only the one whose traffic moved is drawn; the other 29 wait in a fold the user opens,
    and it stays open across the page's refreshes."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2000, 30))
    model = LogisticRegression().fit(x, (x[:, 0] + x[:, 7] > 0).astype(np.int64))
    with modelport.Registry(modelport.Settings(home=tmp_path)) as registry:
        registry.register("wide", model, input_example=x[:5], reference_data=x)
    deployment = tmp_path / "deployment.yaml"
    deployment.write_text("models:\n  - {ref: wide, name: wide, log_sample_rate: 1}\n")
    live = rng.normal(size=(400, 30))
    live[:, 7] += 3.0
    with serving(tmp_path, "--config", str(deployment)) as server:
        for start in range(0, 400, 50):
            rows = live[start : start + 50]
            body = {
                "inputs": [
                    {
                        "name": "input",
                        "shape": list(rows.shape),
                        "datatype": "FP64",
                        "data": rows.ravel().tolist(),
                    }
                ]
            }
            r = httpx.post(f"{server.url}/v2/models/wide/infer", json=body, timeout=10)
            assert r.status_code == 200, r.text
        wait_for(lambda: written(server.url, "wide") == 8)

        browser.get(f"{server.url}/ui/")
        wait = _waiting(browser)
        section = wait.until(
            lambda d: d.find_element(By.CSS_SELECTOR, 'section[data-model="wide"] .drift .legend')
        ).find_element(By.XPATH, "ancestor::section")
        shown = section.find_elements(By.CSS_SELECTOR, '[data-list="drifting"] > .feature')
        assert [f.get_attribute("data-feature") for f in shown] == ["input[7]"]
        assert shown[0].is_displayed()
        assert "1 of 30 features drift" in section.text
        fold = section.find_element(By.CSS_SELECTOR, "details.fold")
        summary = fold.find_element(By.TAG_NAME, "summary")
        assert summary.text == "29 features without drift"
        folded = fold.find_elements(By.CSS_SELECTOR, ".feature")
        assert len(folded) == 29
        assert {f.get_attribute("data-drifted") for f in folded} == {"false"}
        assert not any(f.is_displayed() for f in folded)
        browser.save_screenshot(str(tmp_path / "dashboard-wide.png"))
        summary.click()
        assert all(f.is_displayed() for f in folded[:3])
        # The page redraws itself on a timer: the fold is open in the redrawn page too.
        updated = browser.find_element(By.ID, "status").get_attribute("data-updated")
        wait.until(
            lambda d: d.find_element(By.ID, "status").get_attribute("data-updated") != updated
        )
        fold = browser.find_element(By.CSS_SELECTOR, 'section[data-model="wide"] details.fold')
        assert fold.get_attribute("open") is not None
        assert fold.find_elements(By.CSS_SELECTOR, ".feature")[0].is_displayed()
        browser.save_screenshot(str(tmp_path / "dashboard-wide-open.png"))
        assert console_errors(browser) == []


def test_a_version_whose_files_were_changed_is_listed_as_corrupted(
    home: Path, browser: WebDriver, tmp_path: Path
) -> None:
    """The registry still says ``ready``; the dashboard checks the stored files. Version 2
    was edited before the server started; version 1, the one served, while the page is
    open: both are listed as corrupted with the file that changed, and version 3 as ready."""
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        first = registry.get_version("churn", 1)
        folder = registry.artifacts.local_path(first.artifact_key)
        for _ in range(2):
            registry.register("churn", folder)
        registry.set_alias("churn", "production", 1)
        stored = {v: registry.artifacts.local_path(registry.get_version("churn", v).artifact_key)
                  for v in (1, 2, 3)}  # fmt: skip
    with (stored[2] / "model.skops").open("ab") as fh:
        fh.write(b"\0")
    with serving(home, "churn@production") as server:
        browser.get(f"{server.url}/ui/")
        wait = _waiting(browser)

        def status(version: int) -> str:
            found = browser.find_elements(
                By.CSS_SELECTOR, f'section[data-model="churn"] [data-version="{version}"]'
            )
            return (found[0].get_attribute("data-status") or "") if found else ""

        wait.until(lambda d: status(1) == "ready" and status(2) != "verifying")
        assert (status(1), status(2), status(3)) == ("ready", "corrupted", "ready")
        section = browser.find_element(By.CSS_SELECTOR, 'section[data-model="churn"]')
        assert "versions: 3 (ready), 2 (corrupted), 1 (ready)" in section.text
        problems = section.find_element(By.CSS_SELECTOR, ".problems").text
        assert (
            "version 2 is corrupted: artifact file 'model.skops' is corrupted: sha256" in problems
        )
        assert str(home) not in problems  # no server paths
        browser.save_screenshot(str(tmp_path / "dashboard-corrupted.png"))
        # The served version is edited under the running server: the model in memory was
        # verified when it loaded, but what is stored is not what was registered.
        manifest = stored[1] / "modelport.json"
        manifest.write_bytes(manifest.read_bytes() + b"\n")
        wait.until(lambda d: status(1) == "corrupted")
        section = browser.find_element(By.CSS_SELECTOR, 'section[data-model="churn"]')
        assert "serving version 1" in section.text
        assert "version 1 is corrupted: artifact file 'modelport.json' is corrupted" in (
            section.find_element(By.CSS_SELECTOR, ".problems").text
        )
        assert status(3) == "ready"
        assert console_errors(browser) == []


def test_dashboard_asks_for_a_key_when_auth_is_on(
    home: Path, browser: WebDriver, tmp_path: Path
) -> None:
    with modelport.Registry(modelport.Settings(home=home)) as registry:
        _, token = registry.keys.create_key("dashboard", "read")
    with serving(home, "churn", "--auth") as server:
        assert httpx.get(f"{server.url}/ui/api/models").status_code == 401
        browser.get(f"{server.url}/ui/")
        wait = _waiting(browser)
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
    with serving(home, "churn") as server:
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
        wait = _waiting(browser)
        block = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".opblock-tag-section"))
        page = browser.find_element(By.TAG_NAME, "body").text
        assert "does not specify a valid version field" not in page
        assert "Inference: churn version 1, inputs tenure_months, monthly_spend" in page, page
        assert block.is_displayed()
        browser.save_screenshot(str(tmp_path / "docs.png"))
