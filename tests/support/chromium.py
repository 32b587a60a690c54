"""Debian's headless Chromium through selenium and the system chromedriver (nothing downloaded at run time)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def available() -> bool:
    return bool(shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER))


@contextmanager
def chromium(profile: Path, page_load_timeout: float = 60) -> Iterator[Any]:
    """A headless Chromium with its own profile directory; the back/forward cache stays on, as for users."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                f"--user-data-dir={profile}", "--disable-gpu", "--no-first-run"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=DriverService(CHROMEDRIVER))  # no selenium-manager download
    driver.set_page_load_timeout(page_load_timeout)
    try:
        yield driver
    finally:
        driver.quit()


def log_in(driver: Any, url: str, token: str, wait_for_css: str = "table.stream") -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{url}/issues")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "login").click()
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, wait_for_css))


def screenshot_dir(tmp_path: Path) -> Path:
    """Where browser tests keep screenshots: ``$ERRSTREAM_TEST_ARTIFACTS/web-screenshots`` or the test's tmp dir."""
    import os

    root = Path(os.environ.get("ERRSTREAM_TEST_ARTIFACTS") or tmp_path) / "web-screenshots"
    root.mkdir(parents=True, exist_ok=True)
    return root
