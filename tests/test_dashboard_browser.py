"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright (no browser
download: ``executable_path`` points at the system one). Screenshots go to the test's tmp dir,
and also to ``$DASHBOARD_SCREENSHOT_DIR`` when set (how docs/img/dashboard-*.png are made)."""

from __future__ import annotations

import os
import shutil

import pytest
from helpers_dashboard import TRAIN_STEPS, shared_prefix
from helpers_training import BATCH_SIZE, SEQ_LEN
from system_deps import needs

from soda_jax.dashboard.server import BackgroundServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = needs("chromium")
TIMEOUT_MS = 30_000
STATUSES = {
    "checkpoints/tiny": "SUCCESS",
    "eval/tiny": "SUCCESS",
    "demo/good": "SUCCESS",
    "demo/bad": "FAILED",
    "demo/after": "DEP_FAILED",
    "analysis/isoflop": "SUCCESS",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return shared_prefix(tmp_path_factory)


def test_walk_through_an_experiment_in_chromium(built, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    destination = os.environ.get("DASHBOARD_SCREENSHOT_DIR")
    shots = []

    def screenshot(page, name: str) -> None:
        path = str(tmp_path / f"dashboard-{name}.png")
        page.screenshot(path=path)  # the first screenful, as a reader sees it
        shots.append(path)
        if destination:
            os.makedirs(destination, exist_ok=True)
            shutil.copy(path, destination)

    with BackgroundServer(built.prefix, poll_s=1) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))

            page.goto(base + "/")
            row = page.locator("#experiments tr[data-key]")
            expect(row).to_have_count(1)
            expect(row).to_contain_text("dashboard test experiment")
            page.fill("#filter", "no such experiment")
            expect(row).to_be_hidden()
            page.fill("#filter", "dashboard test")
            expect(row).to_be_visible()
            screenshot(page, "experiments")

            row.locator("a").first.click()
            page.wait_for_selector("#dag svg")
            for name, status in STATUSES.items():
                node = page.locator("#dag g.node", has_text=name)
                expect(node).to_have_count(1)
                expect(node).to_have_class(f"node status-{status}")
            screenshot(page, "experiment")

            page.locator("#dag g.node", has_text="demo/bad").locator("a").first.click()
            traceback = page.locator("pre.traceback")
            expect(traceback).to_contain_text("Traceback (most recent call last)")
            expect(traceback).to_contain_text("RuntimeError: step asked to fail (value=2)")
            screenshot(page, "failed-step")

            page.go_back()
            page.locator("#dag g.node", has_text="checkpoints/tiny").locator("a").first.click()
            chart = page.locator("#chart-loss")
            expect(chart.locator(".main-svg").first).to_be_attached()
            points = page.evaluate("() => document.getElementById('chart-loss').data[0].y.length")
            assert points == TRAIN_STEPS
            expect(chart).to_have_attribute("data-points", str(TRAIN_STEPS))
            expect(chart.locator("path.js-line")).not_to_have_count(0)  # the curve is drawn
            screenshot(page, "training-step")

            page.goto(f"{base}/compare?run={built.rel('checkpoints/tiny')}")
            expect(page.locator("#cmp-loss .main-svg").first).to_be_attached()
            page.select_option("#x-axis", "tokens")
            tokens = page.evaluate("() => document.getElementById('cmp-loss').data[0].x")
            assert tokens == [BATCH_SIZE * SEQ_LEN * (i + 1) for i in range(TRAIN_STEPS)]

            page.goto(f"{base}/step/{built.rel('analysis/isoflop')}")
            expect(page.locator("#isoflop .main-svg").first).to_be_attached()
            traces = page.evaluate("() => document.getElementById('isoflop').data.length")
            assert traces == 6  # 3 budgets: runs and fitted parabola each
            expect(page.locator("#compute-optimal .main-svg").first).to_be_attached()
            screenshot(page, "scaling")

            page.goto(f"{base}/step/{built.rel('eval/tiny')}")
            # the results table: task, metric, value rounded to its interval, the interval, items
            row = page.locator("#eval tr", has_text="speech")
            expect(row).to_contain_text("accuracy")
            expect(row).to_contain_text("0.6667")
            page.get_by_role("link", name="speech.jsonl").click()
            audio = page.locator("audio").first
            expect(audio).to_be_attached()
            src = audio.get_attribute("src")
            assert src is not None and src.endswith(".wav")
            response = page.request.get(base + src)
            assert response.ok and response.body()[:4] == b"RIFF"
            assert page.evaluate("() => document.querySelector('audio').canPlayType('audio/wav')") != ""
            screenshot(page, "eval-items")
            assert not errors, errors
        finally:
            browser.close()

    for path in shots:
        assert os.path.getsize(path) > 10_000
