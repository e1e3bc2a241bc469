"""Opening the report in headless Chromium (Debian's chromium + chromium-driver) through Selenium."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def missing() -> str | None:
    """Why the browser check cannot run here, or None."""
    if not (shutil.which("chromium") and os.path.exists(CHROMEDRIVER)):
        return "chromium / chromium-driver not installed (make test installs them with apt-get as root)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium not installed"
    return None


def chromium():
    """A headless Chromium driver that plays videos without a gesture and keeps the console log (quit it)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--autoplay-policy=no-user-gesture-required", "--window-size=1300,1000"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def console_errors(driver) -> list[dict]:
    """The page's SEVERE console entries so far."""
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def wait_for(check, timeout: float, what: str):
    """check()'s first truthy value within `timeout` seconds; AssertionError naming `what` otherwise."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"no {what} within {timeout:.0f} s")


def open_report(html: Path, screenshot: Path, timeout: float = 60) -> dict:
    """Load the page; wait until every <video> can play. Returns the console errors; per video and image, what
    the page reports (readyState, duration, natural size); and per table its id, class and cells' text by row."""
    driver = chromium()
    try:
        driver.get(html.resolve().as_uri())
        deadline = time.time() + timeout
        videos = []
        while time.time() < deadline:
            videos = driver.execute_script(
                "return [...document.querySelectorAll('video')].map(v => ({readyState: v.readyState, "
                "duration: v.duration, error: v.error ? v.error.code : null, width: v.videoWidth}))")
            if all(v["readyState"] >= 3 or v["error"] for v in videos):
                break
            time.sleep(0.5)
        images = driver.execute_script(
            "return [...document.images].map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth, "
            "height: i.naturalHeight}))")
        tables = driver.execute_script(
            "return [...document.querySelectorAll('table')].map(t => ({id: t.id, cls: t.className, "
            "rows: [...t.rows].map(r => [...r.cells].map(c => c.textContent.trim()))}))")
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1300, min(int(height), 12000))
        driver.save_screenshot(str(screenshot))
        errors = console_errors(driver)
        return {"videos": videos, "images": images, "errors": errors, "tables": tables,
                "title": driver.title}
    finally:
        driver.quit()
