"""The web page in a real browser: headless Chromium from Debian's packages driven by Playwright.

Never a downloaded browser: the Debian binary is given through ``executable_path``. Outside CI the
tests skip when Chromium or Playwright is missing; in CI (CI=true) that is a failure.
"""
from __future__ import annotations

import os
import shutil
import socket
import threading
import time

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover
    sync_playwright = None

if (CHROMIUM is None or sync_playwright is None) and not os.environ.get("CI"):
    pytest.skip("Chromium (Debian package) or Playwright not installed", allow_module_level=True)

REPORT = ("EXAM: MRI LUMBAR SPINE WITHOUT CONTRAST\nFINDINGS:\nL4-5: Left paracentral disc protrusion compressing the "
          "traversing left L5 nerve root. No canal stenosis.\nL5-S1: Mild bilateral foraminal narrowing.\n")


@pytest.fixture(scope="module")
def server(nlp):
    import uvicorn

    from report_nlp.web import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    srv = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def page(server):
    assert CHROMIUM, "chromium is not installed (apt-get install chromium)"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.dialogs = dialogs
        yield page
        browser.close()


def test_browser_paste_report_shows_highlights_and_recommendation(page, server, root):
    page.goto(server)
    page.fill("#text", REPORT)
    page.click("#analyze")
    page.wait_for_selector("#recommendation")
    assert page.locator("mark.f.present").count() >= 2
    assert page.locator("mark.f.negated").count() >= 1
    assert "conservative care" in page.inner_text("#recommendation").lower()
    assert page.inner_text("#concordance") == "not assessable"


def test_browser_exam_changes_concordance(page, server, root):
    page.goto(server)
    page.fill("#text", REPORT)
    page.select_option("#side", "left")
    page.check("input[name=pain_distribution][value='dorsum of foot']")
    page.fill("#conservative_weeks", "8")
    page.fill("#symptom_weeks", "10")
    page.check("input[name=invasive_candidate]")
    page.click("#analyze")
    page.wait_for_selector("#recommendation")
    assert page.inner_text("#concordance") == "concordant"
    assert "consider invasive referral" in page.inner_text("#recommendation").lower()
    if os.environ.get("REPORT_NLP_SCREENSHOT"):  # refresh docs/web_page.png for the README
        page.locator("#highlighted").scroll_into_view_if_needed()
        page.screenshot(path=str(root / "docs" / "web_page.png"), full_page=False)
    # keyboard: a highlighted finding takes focus and shows its details
    page.focus("mark.f.present")
    assert "L5" in page.get_attribute("mark.f.present >> nth=0", "data-detail") + page.get_attribute("mark.f.present >> nth=1", "data-detail")


def test_browser_xss_payload_stays_inert(page, server):
    page.goto(server)
    payload = REPORT + '<script>alert("x1")</script><img src=x onerror="alert(\'x2\')"><svg onload="alert(3)">'
    page.fill("#text", payload)
    page.click("#analyze")
    page.wait_for_selector("#recommendation")
    page.wait_for_timeout(300)
    assert page.dialogs == []
    assert page.locator("#highlighted img, #highlighted script, #highlighted svg").count() == 0
    assert '<script>alert("x1")</script>' in page.inner_text("#highlighted")


def test_browser_oversized_report_shows_413_message(page, server):
    page.goto(server)
    page.evaluate("document.getElementById('text').value = 'x'.repeat(300 * 1024)")
    with page.expect_response(lambda r: r.url.rstrip("/") == server and r.request.method == "POST") as resp:
        page.click("#analyze")
    assert resp.value.status == 413
    assert "too large" in page.inner_text("#error")


def test_browser_narrow_window_has_no_horizontal_page_scroll(page, server):
    page.set_viewport_size({"width": 420, "height": 800})
    page.goto(server)
    width = page.evaluate("document.documentElement.scrollWidth")
    page.set_viewport_size({"width": 1280, "height": 800})
    assert width <= 440
