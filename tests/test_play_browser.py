"""/play in a real browser: Debian's headless Chromium driven by Playwright (``executable_path``, no
browser download), over the playground test prefix (a tiny model trained by the executor). Type a
text and get an audio player; upload a clip and get a transcript; upload a text file and get the
error. The screenshot goes to the test's tmp dir, and to ``$DASHBOARD_SCREENSHOT_DIR/play.png``
when set (how docs/img/play.png is made)."""

from __future__ import annotations

import os
import shutil

import pytest
from helpers_play import shared_play_prefix
from system_deps import needs

from soda_jax.dashboard.server import BackgroundServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = needs("chromium")
TIMEOUT_MS = 30_000
JOB_TIMEOUT_MS = 600_000
"""A job's first run compiles the model's generation program (minutes on a loaded 2-core machine)."""
MAX_NEW = "24"
FETCH_HEAD = (
    "async src => { const r = await fetch(src, {cache: 'no-store'}); return [r.status, (await r.text()).slice(0, 4)]; }"
)
"""The status and first four bytes of a URL, fetched by the page (not from the media cache's ranges)."""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return shared_play_prefix(tmp_path_factory)


def test_play_tts_and_asr_in_chromium(built, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with BackgroundServer(built.prefix) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))

            page.goto(base + "/")
            page.click("nav a[href='/play']")
            expect(page.locator("#checkpoint")).to_have_value(built.model_rel)  # the trained model, found
            expect(page.locator("#temperature")).to_have_value("0.9")  # TTS's default (prompts.TASK_DEFAULTS)
            expect(page.locator("#audio")).to_be_hidden()
            rows = page.locator("#play-results tr[data-id]")
            before = rows.count()  # the session's other playground tests may have left results

            page.fill("#text", "hello world")
            page.fill("#max_new_tokens", MAX_NEW)
            page.click("#generate")
            player = page.locator("#play-result audio")
            expect(player).to_be_attached(timeout=JOB_TIMEOUT_MS)
            expect(page.locator("#job-status")).to_have_attribute("data-state", "done")
            src = player.get_attribute("src")
            fetched = page.evaluate(FETCH_HEAD, src)
            assert fetched == [200, "RIFF"], (src, fetched)
            expect(rows).to_have_count(before + 1)
            expect(rows.first.locator("audio")).to_have_count(1)  # newest first

            page.check("input[name=task][value=asr]")
            expect(page.locator("#temperature")).to_have_value("0.5")  # ASR's default
            expect(page.locator("#text")).to_be_hidden()
            page.set_input_files("#audio", built.clips["short"])
            page.fill("#max_new_tokens", MAX_NEW)
            page.click("#generate")
            transcript = page.locator("#play-result .transcript")
            expect(transcript).to_be_visible(timeout=JOB_TIMEOUT_MS)
            expect(rows).to_have_count(before + 2)
            expect(rows.first.locator(".transcript")).to_have_count(1)
            shot = str(tmp_path / "play.png")
            page.screenshot(path=shot, full_page=True)
            if destination := os.environ.get("DASHBOARD_SCREENSHOT_DIR"):
                os.makedirs(destination, exist_ok=True)
                shutil.copy(shot, destination)

            page.set_input_files("#audio", built.clips["text"])
            page.click("#generate")
            expect(page.locator("#play-error")).to_contain_text("notes.wav")
            expect(page.locator("#play-error")).to_contain_text("not a WAV, FLAC, MP3 or OGG file")
            expect(rows).to_have_count(before + 2)  # nothing added
            assert not errors, errors
        finally:
            browser.close()
