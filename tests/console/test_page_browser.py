"""The page in a real browser: Debian's chromium, driven by chromedriver through Selenium, against a real
``grove-pipelines serve`` process with an API key. It sees every stage of the graph, submits the form,
opens the new request's waterfall and sees a failing stage turn red. The screenshots are saved under
``test-artifacts/`` at the repository root (git-ignored).

No chromium or chromedriver fails the test with how to get them; it never skips.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.console.search_pipeline import expected_answer
from tests.local.runproc import ROOT
from tests.runtime.server.served import start_serve

pytestmark = pytest.mark.timeout(180)

ARTIFACTS = ROOT / "test-artifacts"
PIPELINE = Path(__file__).with_name("search_pipeline.py")
KEY = "browser-test-key"
STAGES = {"retrieve", "rank", "summarise"}
WAIT_S = 30


def _browser_parts() -> tuple[str, str]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail(
            "the browser test needs Debian's chromium and chromium-driver "
            "(`apt-get install -y chromium chromium-driver`; `make setup` installs them when run as root)"
        )
    return chromium, driver


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    chromium, driver = _browser_parts()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1100",
    ):
        options.add_argument(flag)
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    chrome.set_page_load_timeout(WAIT_S)
    chrome.set_script_timeout(WAIT_S)
    try:
        yield chrome
    finally:
        chrome.quit()


def _wait(chrome: WebDriver, what: str, condition: object) -> object:
    return WebDriverWait(chrome, WAIT_S, poll_frequency=0.1).until(condition, message=what)  # type: ignore[arg-type]


def _stage_nodes(chrome: WebDriver) -> set[str]:
    return {
        node.get_attribute("data-stage") or ""
        for node in chrome.find_elements(By.CSS_SELECTOR, "svg.graph g.node")
    }


def _submit(chrome: WebDriver, query: str, limit: int | None, loud: bool) -> tuple[str, str]:
    """Fill the generated form and run it; the status and request id the page got back."""
    field = chrome.find_element(By.ID, "field-query")
    field.clear()
    field.send_keys(query)
    if limit is not None:
        number = chrome.find_element(By.ID, "field-limit")
        number.clear()
        number.send_keys(str(limit))
    box = chrome.find_element(By.ID, "field-loud")
    if box.is_selected() != loud:
        box.click()
    result = chrome.find_element(By.ID, "run-result")
    before = result.get_attribute("data-request-id")
    chrome.find_element(By.ID, "run-button").click()
    _wait(chrome, "the run's answer", lambda c: result.get_attribute("data-request-id") not in (None, before))
    return result.get_attribute("data-status") or "", result.get_attribute("data-request-id") or ""


def test_the_page_draws_the_graph_runs_the_form_and_opens_the_waterfall(browser: WebDriver) -> None:
    served = start_serve(PIPELINE, env={"GP_API_KEYS": KEY})
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        browser.get(served.endpoint + "/")
        notice = browser.find_element(By.ID, "notice")
        _wait(browser, "the page asking for the key", lambda c: "API key" in notice.text)
        assert _stage_nodes(browser) == set()  # nothing drawn without the key

        browser.find_element(By.ID, "api-key").send_keys(KEY)
        browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
        _wait(browser, "every stage of the graph", lambda c: _stage_nodes(c) == STAGES | {"frontend"})
        fields = {
            f.get_attribute("data-field")
            for f in browser.find_elements(By.CSS_SELECTOR, "#fields [data-field]")
        }
        assert fields == {"query", "limit", "loud"}

        status, request_id = _submit(browser, "grove", 1, loud=True)
        assert status == "200"
        answer = json.loads(browser.find_element(By.ID, "run-result").text)
        assert answer == expected_answer("grove", 1, True)

        waterfall = browser.find_element(By.ID, "waterfall")
        _wait(
            browser,
            "the new request's waterfall",
            lambda c: waterfall.get_attribute("data-request-id") == request_id,
        )
        rows = browser.find_elements(By.CSS_SELECTOR, "#waterfall .wf-row[data-stage]")
        assert [r.get_attribute("data-stage") for r in rows] == [
            "retrieve",
            "rank",
            "summarise",
        ]  # in start order
        assert {r.get_attribute("data-outcome") for r in rows} == {"ok"}
        listed = browser.find_elements(By.CSS_SELECTOR, f'#requests tr[data-request-id="{request_id}"]')
        assert len(listed) == 1
        browser.save_screenshot(str(ARTIFACTS / "console-page.png"))

        status, failed_id = _submit(browser, "boom", None, loud=False)
        assert status == "500"
        retrieve = browser.find_element(By.CSS_SELECTOR, 'svg.graph g.node[data-stage="retrieve"]')
        _wait(browser, "retrieve turning red", lambda c: retrieve.get_attribute("data-health") == "failing")
        assert (
            browser.find_element(By.CSS_SELECTOR, 'svg.graph g.node[data-stage="rank"]').get_attribute(
                "data-health"
            )
            != "failing"
        )
        _wait(
            browser,
            "the failed request's waterfall",
            lambda c: waterfall.get_attribute("data-request-id") == failed_id,
        )
        failed_rows = browser.find_elements(By.CSS_SELECTOR, "#waterfall .wf-row[data-stage]")
        assert [(r.get_attribute("data-stage"), r.get_attribute("data-outcome")) for r in failed_rows] == [
            ("retrieve", "error")
        ]
        browser.save_screenshot(str(ARTIFACTS / "console-page-failing.png"))
    finally:
        served.kill()
