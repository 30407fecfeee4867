"""A report's admin page in a real Chromium against a real node, with its evidence playing.

Alice talks (Chromium's fake microphone, Opus through the relay) and chats; Bob, in the
same room, reports her with the demo's Report button. An operator opens the report in the
admin: the evidence is there (evidence_seconds > 0), the page's <audio> plays it (its
clock advances, no media error) and Alice's chat is shown.
Screenshot: test-artifacts/admin-report.png.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys

import pytest

from tests.clients.test_demo_browser import ARTIFACTS, Person, browser  # noqa: F401 (fixture)
from tests.live import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.processes]

REVIEWER = ("report-reviewer", "Re-viewer-pass-8842")
AUDIO = "document.querySelector('#evidence-audio')"


@pytest.fixture(scope="module")
def reviewer(client_node):
    done = subprocess.run(
        [sys.executable, "manage.py", "createsuperuser", "--noinput"],
        cwd=ROOT,
        env={
            **client_node.env,
            "DJANGO_SUPERUSER_USERNAME": REVIEWER[0],
            "DJANGO_SUPERUSER_PASSWORD": REVIEWER[1],
            "DJANGO_SUPERUSER_EMAIL": "",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return REVIEWER


def test_report_page_plays_the_evidence_and_shows_the_chat(browser, client_node, reviewer):  # noqa: F811
    from playwright.sync_api import expect

    room_name = f"Reported {secrets.token_hex(2)}"
    said = f"listen to this {secrets.token_hex(3)}"
    alice = Person(browser, client_node.url, "Alice")
    bob = Person(browser, client_node.url, "Bob")
    admin = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        alice.sign_up()
        bob.sign_up()
        alice.page.fill("#room-name", room_name)
        alice.page.fill("#room-seats", "2")
        alice.page.click("#btn-create")
        alice.page.wait_for_selector("#room:not([hidden])")
        assert alice.stat("s.codec") == "opus"
        bob.page.locator(".room-row", has_text=room_name).locator("button.join").click()
        bob.page.wait_for_selector("#room:not([hidden])")
        a_id = alice.user_id

        # Alice takes a seat and talks: Bob decodes her voice, then hears her for 3 s more.
        alice.page.click('.seat[data-index="0"] .seat-main')
        expect(bob.page.locator('.seat[data-index="0"]')).to_contain_text("Alice")
        bob.wait_for("(s.nonSilentFramesFrom[id] || 0) >= 10", a_id, timeout=15_000)
        heard = bob.stat("s.framesFrom[id]", a_id)
        bob.wait_for(f"s.framesFrom[id] >= {heard + 150}", a_id, timeout=15_000)
        alice.page.fill("#chat-input", said)
        alice.page.click("#btn-send")
        expect(bob.page.locator("#chat-log")).to_contain_text(said)

        # Bob reports her from her row in the demo, giving a reason when asked.
        reason = "shouting over everyone"
        prompts: list[str] = []

        def answer(dialog) -> None:
            prompts.append(dialog.message)
            dialog.accept(reason)

        bob.page.once("dialog", answer)
        a_row = bob.page.locator(f'.participant[data-user-id="{a_id}"]')
        a_row.get_by_role("button", name="Report Alice", exact=True).click()
        expect(bob.page.locator("#chat-log .system").last).to_have_text(
            re.compile(r"Reported Alice \([1-9][0-9]* s of voice kept\)\.")
        )
        assert prompts and "Alice" in prompts[0]
        bob.shot("demo-bob-reported-alice.png")

        # An operator finds the open report in the admin and opens it.
        page = admin.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{client_node.url}/admin/login/?next=/admin/rooms/report/")
        page.fill("#id_username", reviewer[0])
        page.fill("#id_password", reviewer[1])
        page.click("input[type=submit]")
        row = page.locator("#result_list tbody tr", has_text=room_name)
        expect(row).to_have_count(1)
        expect(row).to_contain_text(reason)
        row.locator("a").first.click()
        page.wait_for_url(re.compile(r"/admin/rooms/report/\d+/change/$"))

        seconds = float(page.locator(".field-evidence_seconds .readonly").inner_text())
        assert seconds > 0
        expect(page.locator("#report-evidence h2")).to_contain_text("Evidence against alice")
        expect(page.locator("#report-evidence")).to_contain_text(reason)
        expect(page.locator("#evidence-chat")).to_contain_text(said)

        # Play, as a person would: the play button at the left of the audio controls.
        audio = page.locator("#evidence-audio")
        expect(audio).to_be_visible()
        page.wait_for_function(f"{AUDIO}.readyState >= 1 || {AUDIO}.error !== null")
        loaded = page.evaluate(
            f"({{error: {AUDIO}.error && [{AUDIO}.error.code, {AUDIO}.error.message],"
            f" src: {AUDIO}.currentSrc}})"
        )
        if loaded["error"] is not None:  # keep the file the browser refused, to look at
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / "admin-report-evidence.bin").write_bytes(
                page.request.get(loaded["src"]).body()
            )
        assert loaded["error"] is None, loaded
        assert page.evaluate(f"{AUDIO}.paused") is True
        box = audio.bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + 20, box["y"] + box["height"] / 2)
        page.wait_for_function(
            f"{AUDIO}.error !== null || {AUDIO}.currentTime > 0.5", timeout=10_000
        )
        state = page.evaluate(
            f"({{error: {AUDIO}.error && {AUDIO}.error.code, paused: {AUDIO}.paused,"
            f" t: {AUDIO}.currentTime, duration: {AUDIO}.duration}})"
        )
        assert state["error"] is None, state
        assert state["paused"] is False and state["t"] > 0.5, state
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "admin-report.png"), full_page=True)
        assert errors == [] and alice.errors == [] and bob.errors == []
    finally:
        admin.close()
        alice.context.close()
        bob.context.close()
