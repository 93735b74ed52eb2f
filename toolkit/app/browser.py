"""Driving the page in Debian's headless Chromium through its chromedriver (Selenium; nothing downloads a browser):
the browser test and the documentation's screenshots use it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

from ..optional import require

CHROMIUM = ("chromium", "chromium-browser")
DRIVER = ("chromedriver",)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--mute-audio")


def find(names: tuple[str, ...], package: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError(f"{names[0]} is not installed: `apt-get install {package}` (scripts/bootstrap.sh "
                            "installs it)")


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium WebDriver with a fresh profile, logging the page's network requests (`requests_made`)."""
    webdriver = require("selenium.webdriver", "dev", "driving the web app in a browser")
    from selenium.webdriver.chrome.service import Service as DriverService

    profile = tempfile.mkdtemp(prefix="toolkit-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = find(CHROMIUM, "chromium")
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=DriverService(executable_path=find(DRIVER, "chromium-driver")), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def requests_made(driver: Any) -> list[str]:
    """The URLs the page has requested since the last call (from Chromium's performance log)."""
    import json

    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"]).get("message", {})
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def off_machine(urls: list[str]) -> list[str]:
    """The URLs that leave this machine (anything but loopback, data: and blob:)."""
    out = []
    for url in urls:
        parsed = urlparse(url)
        if parsed.scheme in ("data", "blob", "about", "chrome", "chrome-extension"):
            continue
        if parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
            out.append(url)
    return out


def field(driver: Any, elem_id: str) -> Any:
    """The text box (textarea or input) of the Gradio component with `elem_id`."""
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f"#{elem_id} textarea, #{elem_id} input")


def type_into(driver: Any, elem_id: str, text: str) -> None:
    box = field(driver, elem_id)
    box.clear()
    box.send_keys(text)


def wait_for(driver: Any, condition: Any, seconds: float = 60.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds, poll_frequency=0.2).until(condition)


def served_file(driver: Any, elem_id: str) -> str | None:
    """The URL of the file an audio (or file) component serves: its download link."""
    from selenium.webdriver.common.by import By

    links = driver.find_elements(By.CSS_SELECTOR, f"#{elem_id} a[download][href]")
    return links[0].get_attribute("href") if links else None
