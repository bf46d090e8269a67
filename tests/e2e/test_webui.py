"""The web chat page of `luzao serve` in headless Chromium (Debian's /usr/bin/chromium) driven by
Playwright: the page loads from the binary, a typed question gets an answer that streams in."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from server_harness import ServerProcess

CHROMIUM = Path(os.environ.get("LUZAO_CHROMIUM", "/usr/bin/chromium"))
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                                                            "(scripts/setup-deps.sh installs it)")


@pytest.fixture(scope="module")
def server(luzao_bin, smollm2_model):
    s = ServerProcess(luzao_bin, smollm2_model, "-t", "2", "--parallel", "2", "-c", "512")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def page(server):
    if not CHROMIUM.is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set LUZAO_CHROMIUM)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        pg = browser.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.errors = errors
        yield pg
        browser.close()


def test_page_streams_an_answer(server, page):
    external: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(server.url) else external.append(r.url))
    page.goto(server.url + "/")
    assert page.title() == "luzao chat"
    sync_api.expect(page.locator("#model")).to_have_text(server.model_id, timeout=30_000)
    page.click("summary")  # open the settings
    page.fill("#max-tokens", "24")
    page.fill("#temperature", "0")
    # Count how often the answer's text changes while it streams.
    page.evaluate("""() => {
        window.updates = 0;
        new MutationObserver(() => {
            const c = document.querySelector('.assistant .content');
            if (c && c.textContent) window.updates++;
        }).observe(document.getElementById('log'), {subtree: true, childList: true, characterData: true});
    }""")
    page.fill("#input", "What is the capital of France?")
    page.keyboard.press("Enter")
    sync_api.expect(page.locator(".user .content")).to_have_text("What is the capital of France?")
    sync_api.expect(page.locator("#send")).to_be_enabled(timeout=120_000)
    answer = page.locator(".assistant .content").inner_text()
    assert answer.strip(), "no answer shown"
    assert "Error" not in answer
    assert page.evaluate("window.updates") >= 3, "the answer did not stream in"
    assert "tokens" in page.locator("#status").inner_text()
    assert external == [], f"the page fetched from elsewhere: {external}"
    assert page.errors == []


def test_second_turn_keeps_the_conversation(server, page):
    page.fill("#input", "And of Italy?")
    page.keyboard.press("Enter")
    sync_api.expect(page.locator(".assistant")).to_have_count(2, timeout=30_000)
    sync_api.expect(page.locator("#send")).to_be_enabled(timeout=120_000)
    assert page.locator(".assistant .content").nth(1).inner_text().strip()
    assert page.locator(".user").count() == 2
