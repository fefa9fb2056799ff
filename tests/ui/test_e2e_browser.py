"""End to end in a real browser: ``bastion ui`` (the CLI, over TLS) driven by headless Chromium.

Signs in through the login form, opens every page, checks what it shows against the project's data, checks
that no injected payload ran (no alert dialog), signs out, and keeps one screenshot per page under
``$BASTION_ARTIFACTS_DIR`` (default: the test's temporary directory) for CI to collect. Uses Debian's
``chromium`` and ``chromium-driver`` (.ci/run installs them): the driver path is given explicitly and
Selenium Manager is kept offline, so nothing is downloaded. Skipped only outside CI when they are absent.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _need_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{', '.join(missing)} missing: .ci/run must install chromium and chromium-driver")
        pytest.skip(f"{', '.join(missing)} not installed")


@pytest.fixture
def dashboard(ui_project: Any) -> Iterator[str]:
    bastion = shutil.which("bastion", path=str(Path(sys.executable).parent)) or "bastion"
    env = {**os.environ, "BASTION_NO_PROGRESS": "1"}
    proc = subprocess.Popen(
        [bastion, "ui", "--home", str(ui_project.home), "--port", "0", "--reports", str(ui_project.reports)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    url, deadline, seen = None, time.monotonic() + 60, []
    while url is None and time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stderr], [], [], 1.0)
        if ready:
            line = proc.stderr.readline()
            seen.append(line)
            if "dashboard on " in line:
                url = line.rsplit(" ", 1)[-1].strip()
    try:
        assert url is not None and url.startswith("https://127.0.0.1:"), "".join(seen)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def browser() -> Iterator[Any]:
    _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager never downloads anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.accept_insecure_certs = True  # the dashboard's self-signed certificate
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _artifacts(tmp_path: Path) -> Path:
    out = Path(os.environ.get("BASTION_ARTIFACTS_DIR") or tmp_path / "artifacts") / "ui-screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _no_alert(driver: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert  # an injected script would have opened one


def _click_and_wait(driver: Any, selector: str) -> None:
    """Click a submit button and wait until the browser has left the page it was on."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    html = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.CSS_SELECTOR, selector).click()

    def left(d: Any) -> bool:
        try:
            return bool(expected_conditions.staleness_of(html)(d))
        except WebDriverException as exc:
            # Chrome may answer for a node it is detaching with an inspector error instead of a stale
            # reference: the old page is going away all the same
            if "does not belong to the document" in str(exc):
                return True
            raise

    WebDriverWait(driver, 30).until(left)


def _submit(driver: Any, token: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "token").send_keys(token)
    _click_and_wait(driver, "form.login button")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_browser_walks_every_page(ui_project: Any, dashboard: str, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    shots = _artifacts(tmp_path)
    browser.get(dashboard + "/inventory")
    assert browser.current_url.endswith("/login")  # no page without a session
    _submit(browser, ui_project.tokens["consumer"])
    assert "auditor or admin" in browser.find_element(By.CSS_SELECTOR, "p.error").text
    _submit(browser, ui_project.tokens["auditor"])
    assert browser.current_url.rstrip("/") == dashboard, browser.page_source[-3000:]
    cookies = browser.get_cookies()
    assert len(cookies) == 1 and cookies[0]["httpOnly"] and cookies[0]["secure"]
    assert cookies[0]["sameSite"] == "Strict" and ui_project.tokens["auditor"] not in cookies[0]["value"]

    expect = {
        "/": ["UNWITNESSED", "fraud:1", "gateway: extraction monitor"],
        "/inventory": ["fraud", "confidential", "verified", "prod", 'train<script>alert("x")</script>'],
        "/lineage": ["bastion train", "fraud:1"],
        "/audits": ["grade C", "robust_accuracy = 0.41", "reviewer note <script>", "Plots from the matching"],
        "/alerts": [
            "gateway: extraction monitor",
            "mallory",
            "guard: prompt blocked",
            "7 request(s) without",
        ],
        "/hunt": ["Findings", "Response actions"],
        "/drift": ["No gateway has written a drift state"],
        "/log": ["UNWITNESSED", "registry:promote", "serve:monitor-flag"],
    }
    for path, needles in expect.items():
        browser.get(dashboard + path)
        _no_alert(browser)
        text = browser.find_element(By.TAG_NAME, "main").text
        for needle in needles:
            assert needle in text, (path, needle, text[:2000])
        assert browser.find_elements(By.CSS_SELECTOR, "main script, body img[onerror]") == []
        browser.save_screenshot(str(shots / f"{path.strip('/') or 'overview'}.png"))
    svg = browser.find_elements(By.CSS_SELECTOR, "main svg[role=img]")
    browser.get(dashboard + "/lineage")
    assert browser.find_elements(By.CSS_SELECTOR, "main svg[role=img] title")
    assert svg is not None
    browser.get(dashboard + "/log")
    assert browser.find_element(By.ID, "log-status").text == "UNWITNESSED"
    _click_and_wait(browser, "form.logout button")
    assert browser.current_url.endswith("/login")
    browser.get(dashboard + "/audits")
    assert browser.current_url.endswith("/login")
    assert sorted(p.name for p in shots.glob("*.png")) == sorted(
        f"{p.strip('/') or 'overview'}.png" for p in expect
    )
