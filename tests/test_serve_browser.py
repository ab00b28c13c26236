"""The intake page in a real browser: headless Chromium (Debian's package) driven by Playwright.

The server is uvicorn on a loopback port picked by the system, in a thread
of this process; the browser reaches nothing else (its background network
features are switched off). ``make test`` installs Chromium (``make
chromium``); without it or Playwright these tests are skipped with the reason.
"""

from __future__ import annotations

import logging
import shutil
import socket
import threading
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed")
playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (test extra)")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(shutil.which("chromium") is None,
                                reason="Chromium is not installed (make chromium installs it)")

import backcare  # noqa: E402
from backcare import _serve as serve  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = serve.server(backcare.Recommender(), host="127.0.0.1", port=port)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    srv.should_exit = True
    thread.join(timeout=30)
    sock.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=60_000)
        yield b
        b.close()


@pytest.fixture()
def page(browser, server):
    context = browser.new_context()
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    pg.goto(server)
    yield pg
    context.close()


def test_fill_the_form_submit_and_see_the_ranking(page):
    page.get_by_label("How many weeks the current episode of back pain has lasted.").fill("20")
    page.locator("#in-tight_bands-yes").check()
    page.get_by_label("What the person wants from massage.").select_option("long_term_relief")
    page.get_by_role("button", name="Recommend").click()
    page.wait_for_selector("#result")
    expected = backcare.recommend({"pain_weeks": 20, "tight_bands": True, "goal": "long_term_relief"})
    names = page.locator("#techniques li.technique h4").all_inner_texts()
    assert names == [t.name for t in expected.techniques]
    assert page.locator("#referral").count() == 0
    # The answers stay in the form for the next change.
    assert page.locator("#in-pain_weeks").input_value() == "20"
    assert page.locator("#in-tight_bands-yes").is_checked()


def test_a_red_flag_shows_the_referral_first_and_no_technique(page):
    page.locator("#in-tight_bands-yes").check()
    page.get_by_label("Numbness around the back passage, genitals or inner thighs").check()
    page.get_by_role("button", name="Recommend").click()
    page.wait_for_selector("#result")
    first = page.locator("#result > :nth-child(2)")
    assert first.get_attribute("id") == "referral"
    assert first.get_attribute("role") == "alert"
    assert "See a clinician (emergency)" in first.inner_text()
    assert "Every massage technique is withheld until a clinician has assessed you." in first.inner_text()
    assert page.locator("#techniques").count() == 0


def test_bad_answers_get_field_errors_in_the_librarys_words(page):
    page.locator("#in-pain_intensity").fill("11")
    page.locator("#in-pain_weeks").fill("-3")
    page.get_by_role("button", name="Recommend").click()
    page.wait_for_selector("#errors")
    summary = page.locator("#errors").inner_text()
    for field, value in (("pain_intensity", 11), ("pain_weeks", -3)):
        with pytest.raises(backcare.ProfileError) as expected:
            backcare.recommend({field: value})
        message = str(expected.value)
        assert message in summary
        assert page.locator(f"#error-{field}").inner_text() == message
        box = page.locator(f"#in-{field}")
        assert box.get_attribute("aria-invalid") == "true"
        assert f"error-{field}" in box.get_attribute("aria-describedby")
    assert page.locator("#result").count() == 0
    # The summary links to the field.
    page.locator('#errors a[href="#field-pain_intensity"]').click()
    assert page.url.endswith("#field-pain_intensity")


def test_every_control_has_a_label(page):
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter(el => el.labels.length === 0).map(el => el.id)""")
    assert unlabelled == []
    groups = page.evaluate("""() => [...document.querySelectorAll('fieldset')]
        .filter(f => !f.querySelector('legend') || !f.querySelector('legend').textContent.trim()).length""")
    assert groups == 0


def test_the_form_can_be_used_by_keyboard_alone(page):
    expected = page.evaluate("""() => {
        const out = [];
        const seenRadio = new Set();
        for (const el of document.querySelectorAll('form input, form select, form textarea, form button')) {
            if (el.type === 'radio') {
                if (seenRadio.has(el.name)) continue;
                seenRadio.add(el.name);
                out.push(document.querySelector(`input[name="${el.name}"]:checked`).id);
            } else out.push(el.id);
        }
        return out;
    }""")
    reached = []
    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("document.activeElement.className") == "skip"
    for _ in range(len(expected) + 5):
        page.keyboard.press("Tab")
        active = page.evaluate("document.activeElement.id")
        if active == "submit":
            reached.append(active)
            break
        if active.startswith("in-"):
            reached.append(active)
    assert reached == expected
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    # Answer by keyboard: tick a red flag with Space, then submit with Enter.
    page.locator("#in-red_flags-fever").focus()
    page.keyboard.press("Space")
    page.locator("#submit").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#referral")
    assert "spinal infection" in page.locator("#referral").inner_text()


def test_the_page_works_without_javascript(browser, server):
    context = browser.new_context(java_script_enabled=False)
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    try:
        pg.goto(server)
        pg.locator("#in-stiffness-yes").check()
        pg.locator("#in-pain_weeks").fill("2")
        pg.locator("#submit").click()
        pg.wait_for_selector("#techniques")
        first = pg.locator("#techniques li.technique h4").first.inner_text()
        assert first == backcare.recommend({"stiffness": True, "pain_weeks": 2}).techniques[0].name
    finally:
        context.close()


def test_the_server_logged_no_answer(page, caplog):
    with caplog.at_level(logging.DEBUG):
        page.locator("#in-pain_weeks").fill("4242")
        page.locator("#submit").click()
        page.wait_for_selector("#result")
    assert "4242" not in caplog.text
    assert not [r for r in caplog.records if r.name == "uvicorn.access"]


def test_why_not_and_what_if_are_on_the_page(page):
    page.locator("#in-stiffness-yes").check()
    page.locator("#in-age").fill("45")
    page.get_by_role("button", name="Recommend").click()
    page.wait_for_selector("#result")
    expected = backcare.recommend({"stiffness": True, "age": 45})
    why = page.locator("#why-not")
    why.locator("summary").click()  # a <details>: opens without any script
    text = why.inner_text()
    assert str(expected.why_not("trigger_point_therapy").summary) in text
    assert "if: tight, sensitive bands in the back muscles" in text
    changes = page.locator("#what-if")
    changes.locator("summary").click()
    text = changes.inner_text()
    for change in expected.what_if():
        assert change.change in text
    assert "age 0 to 15 instead of 45: referral none to routine" in text
