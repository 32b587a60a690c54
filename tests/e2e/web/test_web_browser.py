"""The web app in a real headless Chromium (Debian's chromium + chromium-driver, through selenium).

Log in, filter the stream, open an issue, read its stack trace, resolve it, see the status change
(recorded in ClickHouse by the real status sink), watch a new alert appear live. Screenshots of every
step are kept under ``$ERRSTREAM_TEST_ARTIFACTS`` (or the test's tmp dir) and their paths printed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from schemas.alerts import AlertEvent
from tests.e2e.analytics.data import fp
from tests.e2e.web.conftest import WebEnv
from tests.support import chromium
from tests.support.services import wait_for

pytestmark = pytest.mark.e2e

if not chromium.available():
    pytest.skip("Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)",
                allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with chromium.chromium(tmp_path / "chrome") as driver:
        yield driver


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return chromium.screenshot_dir(tmp_path)


def test_triage_in_a_real_browser(web_env: WebEnv, browser: Any, shots: Path) -> None:
    d = browser  # selenium WebDriver
    wait = WebDriverWait(d, 30)

    def shot(name: str) -> None:
        path = shots / f"{name}.png"
        d.save_screenshot(str(path))
        print(f"screenshot: {path}")

    # 1. no session: the login form; a wrong token is refused, the member's token lets alice in
    d.get(f"{web_env.url}/issues")
    assert "/login" in d.current_url
    d.find_element(By.ID, "token").send_keys("est_0000_wrong")
    d.find_element(By.ID, "login").click()
    wait.until(lambda drv: "not valid" in drv.page_source)
    d.find_element(By.ID, "token").send_keys(web_env.tokens["member"])
    d.find_element(By.ID, "login").click()
    wait.until(lambda drv: drv.find_elements(By.CSS_SELECTOR, "table.stream"))
    shot("1-issue-stream")
    titles = [e.text for e in d.find_elements(By.CSS_SELECTOR, "table.stream a.title")]
    assert "OperationalError: database timeout" in titles  # billing's open critical issue
    assert "UserWarning: deprecated flag" not in titles  # ignored: not in the default (open) stream

    # 2. filter: service checkout, level error
    Select(d.find_element(By.ID, "f-service")).select_by_visible_text("checkout")
    Select(d.find_element(By.ID, "f-level")).select_by_visible_text("error")
    d.find_element(By.ID, "apply").click()
    wait.until(lambda drv: "service=checkout" in drv.current_url)
    titles = [e.text for e in d.find_elements(By.CSS_SELECTOR, "table.stream a.title")]
    assert set(titles) == {"KeyError: 'cart_id'", "ConnectionError: payments gateway", "ValueError: bad amount"}
    shot("2-filtered")

    # 3. open the issue with the keyboard (j moves down the stream, o opens) and read its stack trace
    body = d.find_element(By.TAG_NAME, "body")
    target = titles.index("KeyError: 'cart_id'")
    for _ in range(target + 1):
        body.send_keys("j")
    current = d.find_element(By.CSS_SELECTOR, "table.stream tr.cur a.title")
    assert current.text == "KeyError: 'cart_id'"
    body.send_keys("o")
    wait.until(lambda drv: drv.find_elements(By.ID, "stacktrace"))
    trace = d.find_element(By.ID, "stacktrace").text
    assert "KeyError: 'cart_id'" in trace
    assert "checkout.cart" in trace and "load_cart" in trace and "in app" in trace
    assert d.find_element(By.ID, "issue-status").text == "new"
    shot("3-issue-page")

    # 4. resolve it: the page says so at once, and ClickHouse records it (topic → status sink)
    d.find_element(By.ID, "resolve").click()
    wait.until(lambda drv: "Issue resolved." in drv.page_source)
    assert d.find_element(By.ID, "issue-status").text == "resolved"
    shot("4-resolved")

    def recorded() -> str:
        d.refresh()
        return str(d.find_element(By.ID, "history").text)

    history = wait_for(recorded, lambda text: "resolved" in text and "alice" in text
                       and "being recorded" not in d.page_source, 60,
                       "the resolution in the issue's history", diagnostics=web_env.notify.output)
    assert "status" in history
    assert d.find_element(By.ID, "issue-status").text == "resolved" and "being recorded" not in d.page_source
    shot("5-history")

    # 5. a new alert appears on the open alerts page without a reload
    d.get(f"{web_env.url}/alerts")
    wait.until(lambda drv: drv.find_elements(By.ID, "alerts-feed"))
    # the page's EventSource is connected (the page itself is already loaded)
    wait_for(lambda: httpx.get(f"{web_env.url}/healthz").json()["live_streams"], lambda n: n >= 1, 20,
             "the alerts page's live stream")
    alert = AlertEvent(kind="new_issue", severity="critical", dedup_key="new:live", service="billing",
                       fingerprint=fp("B"), title="Live: card processor down")

    async def publish() -> None:
        producer = AIOKafkaProducer(**web_env.settings.kafka_client_kwargs())
        await producer.start()
        try:
            await producer.send_and_wait(web_env.settings.topic_alerts, alert.model_dump_json().encode())
        finally:
            await producer.stop()

    sent = time.monotonic()
    asyncio.run(publish())
    WebDriverWait(d, 20, poll_frequency=0.05).until(
        lambda drv: "Live: card processor down" in drv.find_element(By.ID, "alerts-feed").text)
    latency = time.monotonic() - sent
    print(f"live alert shown {latency:.2f} s after it was published")
    shot("6-live-alert")
    assert d.find_elements(By.CSS_SELECTOR, "#alerts-feed tr.live-alert")
    assert latency < 5.0  # goal 2 s; generous on the loaded test machine
