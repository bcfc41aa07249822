"""Real browser: `streamlit run streamlit_app.py` headless, driven by Debian's Chromium through Playwright.

Clicks through every page, runs the default experiment, and checks the key text and that the charts
render. Screenshots go to a temporary folder, or to ``$DROP_SCREENSHOTS`` when set.
"""
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"streamlit did not answer at {url} within {timeout} s")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian's chromium is not installed ({CHROMIUM} is missing); .ci/run installs it")
    tmp = tmp_path_factory.mktemp("browser")
    port = _free_port()
    env = {**os.environ, "DROP_STORE": str(tmp / "runs.sqlite"), "DROP_CACHE": str(tmp / "cache"),
           "OMP_NUM_THREADS": "1"}
    with open(tmp / "streamlit.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
             "--server.headless", "true", "--server.address", "localhost", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://localhost:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def shots(tmp_path):
    folder = Path(os.environ.get("DROP_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _go(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title, exact=True).click()


def test_click_through_every_page_and_run_the_default_experiment(app_url, browser, shots):
    from playwright.sync_api import expect

    expect.set_options(timeout=90_000)           # the first page to import torch takes a while on a busy CPU
    page = browser.new_page(viewport={"width": 1400, "height": 3000})   # Streamlit scrolls inside its own container
    page.set_default_timeout(90_000)
    page.goto(app_url)
    expect(page.locator('[data-testid="stSidebarNav"]')).to_be_visible()
    page.wait_for_timeout(2000)
    page.screenshot(path=shots / "0_start.png")

    _go(page, "Mixture")
    expect(page.get_by_text("Class risks of each rule")).to_be_visible()
    expect(page.locator(".vega-embed").first).to_be_visible()
    page.screenshot(path=shots / "0b_mixture.png")

    _go(page, "Guide")
    expect(page.get_by_text("higher score = harder = kept first").first).to_be_visible()
    expect(page.get_by_text("Your own image folder")).to_be_visible()
    page.screenshot(path=shots / "1_guide.png")

    _go(page, "Results")
    expect(page.get_by_text("The store is empty")).to_be_visible()

    _go(page, "Experiment")
    expect(page.get_by_text("3 runs", exact=False).first).to_be_visible()
    page.screenshot(path=shots / "2_experiment.png")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_text("runs done", exact=False).first).to_be_visible()
    page.wait_for_timeout(1500)
    page.screenshot(path=shots / "3_progress.png")
    expect(page.get_by_text("3 of 3 runs finished", exact=False)).to_be_visible(timeout=240_000)
    expect(page.locator(".vega-embed").first).to_be_visible()
    page.wait_for_timeout(1500)
    page.screenshot(path=shots / "4_experiment_results.png")
    expect(page.get_by_text("random+DRoP").first).to_be_visible()
    for i, (tab, shows) in enumerate([("Across densities", ".vega-embed"), ("Bias", ".vega-embed"),
                                      ("Quotas", '[data-testid="stDataFrame"]'), ("Examples", "img")]):
        page.get_by_role("tab", name=tab).click()
        expect(page.locator(f'[role="tabpanel"]:visible {shows}').first).to_be_visible()
        page.wait_for_timeout(1000)
        page.locator('[data-testid="stTabs"]').screenshot(path=shots / f"4{'abcd'[i]}_{tab.split()[0].lower()}.png")

    _go(page, "Results")
    expect(page.get_by_text("3 of 3 runs")).to_be_visible()
    expect(page.locator(".vega-embed").first).to_be_visible()
    page.wait_for_timeout(1500)
    page.screenshot(path=shots / "5_results.png")
    errors = page.locator('[data-testid="stException"]')
    assert errors.count() == 0, errors.first.inner_text()
    page.close()
