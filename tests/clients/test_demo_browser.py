"""The demo page end to end: two people in two headless Chromium contexts talk through a
real daphne node. Chromium's fake microphone (a periodic beep) is the voice.

The room is an Opus room (the default codec): both pages send Opus (WebCodecs). What is
checked is what a person notices: each page decodes the other's audio and shows them
speaking, and when A mutes, B's level from A falls to silence; every button says what it
mutes, and a moderator's mute is shown plainly. An operator's admin page follows the room
live, with the seats numbered as the demo numbers them. /api/docs/ renders with no
network. Screenshots of the pages land in test-artifacts/.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.clients.conftest import tool_missing
from tests.live import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.processes]

CHROMIUM = os.environ.get("VOICEROOM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / "test-artifacts"
STATS = "window.voiceroomDemo"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        tool_missing(
            f"Chromium is not installed at {CHROMIUM} (apt-get install chromium): "
            "the demo page's browser test was not run"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        tool_missing("playwright is not installed (pip install -r requirements-dev.txt)")
    with sync_playwright() as playwright:
        # Never a downloaded browser: the system's Chromium.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Person:
    def __init__(self, browser, base: str, name: str, query: str = "") -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 860})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.goto(f"{base}/demo/{query}")
        self.name = name

    def sign_up(self) -> None:
        page = self.page
        page.fill("#auth-username", f"{self.name.lower()}{secrets.token_hex(3)}")
        page.fill("#auth-password", "a-Long-pass-123")
        page.fill("#auth-display", self.name)
        page.click("#btn-register")
        page.wait_for_selector("#app:not([hidden])")

    @property
    def user_id(self) -> int:
        return self.stat("s.client.you.user_id")

    def stat(self, expression: str, arg=None):
        """Evaluate `expression` in the page, with `s` the page's counters and `id` arg."""
        return self.page.evaluate(f"id => {{ const s = {STATS}; return ({expression}); }}", arg)

    def wait_for(self, expression: str, arg=None, timeout: float = 10_000) -> None:
        self.page.wait_for_function(
            f"id => {{ const s = {STATS}; return ({expression}); }}", arg=arg, timeout=timeout
        )

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_two_browsers_hear_each_other_and_mute_silences(browser, client_node):
    from playwright.sync_api import expect

    room_name = f"Duet {secrets.token_hex(2)}"
    alice = Person(browser, client_node.url, "Alice")
    bob = Person(browser, client_node.url, "Bob")
    try:
        alice.page.wait_for_selector("#auth:not([hidden])")
        alice.shot("demo-sign-in.png")
        alice.sign_up()
        bob.sign_up()

        # Alice creates a room with two seats and lands in it.
        alice.page.fill("#room-name", room_name)
        alice.page.fill("#room-seats", "2")
        alice.page.click("#btn-create")
        alice.page.wait_for_selector("#room:not([hidden])")
        expect(alice.page.locator("#conn-state")).to_have_text("connected")
        # The owner's mute buttons each say what they mute: her mic, or a seat.
        expect(alice.page.locator("#btn-mute")).to_have_text("Mute my mic")
        for number in (1, 2):
            seat = alice.page.locator(f'.seat[data-index="{number - 1}"]')
            expect(seat).to_contain_text(f"seat {number}")
            expect(
                seat.get_by_role("button", name=f"Mute seat {number}", exact=True)
            ).to_be_visible()

        # Bob sees it in his room list with one person online, and joins.
        row = bob.page.locator(".room-row", has_text=room_name)
        expect(row.locator(".count")).to_have_text("1", timeout=10_000)
        bob.shot("demo-room-list.png")
        row.locator("button.join").click()
        bob.page.wait_for_selector("#room:not([hidden])")
        a_id, b_id = alice.user_id, bob.user_id
        expect(alice.page.locator(f'.participant[data-user-id="{b_id}"]')).to_contain_text("Bob")

        # Both take a seat: only seated people can talk in a room with seats.
        alice.page.click('.seat[data-index="0"] .seat-main')
        bob.page.click('.seat[data-index="1"] .seat-main')
        for person in (alice, bob):
            expect(person.page.locator('.seat[data-index="0"]')).to_contain_text("Alice")
            expect(person.page.locator('.seat[data-index="1"]')).to_contain_text("Bob")

        # Alice's voice reaches Bob's page, decoded and not silent; he sees her speaking.
        bob.wait_for("(s.nonSilentFramesFrom[id] || 0) >= 10", a_id)
        expect(bob.page.locator(f'.participant[data-user-id="{a_id}"]')).to_have_class(
            re.compile(r"\bspeaking\b"), timeout=5_000
        )
        # And Bob's reaches Alice's, in the room's codec.
        alice.wait_for("(s.nonSilentFramesFrom[id] || 0) >= 10", b_id)
        assert alice.stat("s.codec") == "opus"
        assert bob.stat("s.codec") == "opus"
        assert alice.stat("s.decodeErrors") == 0 and bob.stat("s.decodeErrors") == 0

        alice.page.fill("#chat-input", "can you hear me?")
        alice.page.click("#btn-send")
        expect(bob.page.locator("#chat-log")).to_contain_text("can you hear me?")
        expect(alice.page.locator(".room-row", has_text=room_name).locator(".count")).to_have_text(
            "2", timeout=10_000
        )
        alice.shot("demo-alice-talking.png")
        bob.shot("demo-bob-hears-alice.png")

        # Alice mutes herself: what Bob decodes from her falls to silence and stays there.
        alice.page.click("#btn-mute")
        expect(alice.page.locator("#btn-mute")).to_have_text("Unmute my mic")
        a_row = bob.page.locator(f'.participant[data-user-id="{a_id}"]')
        expect(a_row).to_contain_text("mic off")
        bob.wait_for("s.lastLevelFrom[id] === 0", a_id, timeout=5_000)
        heard = bob.stat("s.nonSilentFramesFrom[id]", a_id)
        # For 1.5 s, sampled every 50 ms, Bob's level from Alice stays at silence.
        loudest = bob.page.evaluate(
            """async (id) => {
                let loudest = 0;
                for (let i = 0; i < 30; i++) {
                    loudest = Math.max(loudest, window.voiceroomDemo.lastLevelFrom[id] || 0);
                    await new Promise((r) => setTimeout(r, 50));
                }
                return loudest;
            }""",
            a_id,
        )
        assert loudest == 0
        assert bob.stat("s.nonSilentFramesFrom[id]", a_id) == heard
        expect(a_row).not_to_have_class(re.compile(r"\bspeaking\b"))
        # Bob still talks to Alice.
        still = alice.stat("s.nonSilentFramesFrom[id]", b_id)
        alice.wait_for(f"s.nonSilentFramesFrom[id] > {still}", b_id, timeout=5_000)
        alice.shot("demo-alice-muted.png")
        bob.shot("demo-bob-alice-muted.png")

        # A whisper reaches Bob only as a whisper; then Alice, the owner, mutes him with
        # the moderation button, and his voice stops reaching her.
        alice.page.select_option("#chat-to", str(b_id))
        alice.page.fill("#chat-input", "just for you")
        alice.page.click("#btn-send")
        expect(bob.page.locator("#chat-log .whisper")).to_contain_text("just for you")
        b_row = alice.page.locator(f'.participant[data-user-id="{b_id}"]')
        # Three different things to mute, three different names; none is just "Mute".
        expect(alice.page.get_by_role("button", name="Mute", exact=True)).to_have_count(0)
        b_row.get_by_role("button", name="Mute Bob", exact=True).click()
        expect(b_row.get_by_role("button", name="Unmute Bob", exact=True)).to_be_visible()
        expect(bob.page.locator("#seat-hint")).to_have_text("A moderator muted you.")
        expect(b_row.locator(".tag.mod-muted")).to_have_text("Muted by moderator")
        # Bob sees it plainly: a badge, and his own mic button out of reach.
        expect(bob.page.locator("#mod-muted")).to_be_visible()
        expect(bob.page.locator("#mod-muted")).to_have_text("Muted by moderator")
        expect(bob.page.locator("#btn-mute")).to_be_disabled()
        alice.wait_for("s.lastLevelFrom[id] === 0", b_id, timeout=5_000)
        bob.shot("demo-bob-muted-by-moderator.png")
        alice.shot("demo-owner-muted-bob.png")

        # Unmuted, his button is his again and the badge is gone.
        b_row.get_by_role("button", name="Unmute Bob", exact=True).click()
        expect(bob.page.locator("#mod-muted")).to_be_hidden()
        expect(bob.page.locator("#btn-mute")).to_be_enabled()

        assert alice.errors == [] and bob.errors == []
    finally:
        alice.context.close()
        bob.context.close()


OPERATOR = ("operator", "Opera-tor-pass-7319")


@pytest.fixture(scope="module")
def operator(client_node):
    """A superuser of the client node's database, made as the README says (non-interactive
    here), to sign in to the admin with."""
    done = subprocess.run(
        [sys.executable, "manage.py", "createsuperuser", "--noinput"],
        cwd=ROOT,
        env={
            **client_node.env,
            "DJANGO_SUPERUSER_USERNAME": OPERATOR[0],
            "DJANGO_SUPERUSER_PASSWORD": OPERATOR[1],
            "DJANGO_SUPERUSER_EMAIL": "",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return OPERATOR


def test_admin_live_participants_come_first_and_follow_the_room(browser, client_node, operator):
    from playwright.sync_api import expect

    alice = Person(browser, client_node.url, "Alice")
    bob = Person(browser, client_node.url, "Bob")
    admin = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        alice.sign_up()
        alice.page.fill("#room-name", f"Watched {secrets.token_hex(2)}")
        alice.page.fill("#room-seats", "3")
        alice.page.click("#btn-create")
        alice.page.wait_for_selector("#room:not([hidden])")
        room_id = alice.stat("s.client.roomId")

        page = admin.new_page()
        page.goto(f"{client_node.url}/admin/login/?next=/admin/")
        page.fill("#id_username", operator[0])
        page.fill("#id_password", operator[1])
        page.click("input[type=submit]")
        page.wait_for_url(f"{client_node.url}/admin/")
        page.goto(f"{client_node.url}/admin/rooms/room/{room_id}/change/")

        # The live participants come first, above the room's form and its Save buttons.
        live_top = page.locator("#live-participants").bounding_box()["y"]
        assert live_top < page.locator("#room_form").bounding_box()["y"]
        assert live_top < page.locator("input[name=_save]").bounding_box()["y"]
        expect(page.locator(f'.live-participant[data-user-id="{alice.user_id}"]')).to_be_visible()
        page.evaluate("window.notReloaded = true")

        # Bob comes in and takes the second seat; the admin page follows, without a reload.
        bob.sign_up()
        bob.page.locator(".room-row", has_text="Watched").locator("button.join").click()
        bob.page.wait_for_selector("#room:not([hidden])")
        bob.page.click('.seat[data-index="1"] .seat-main')
        expect(bob.page.locator('.seat[data-index="1"]')).to_contain_text("seat 2")
        b_id = bob.user_id
        expect(bob.page.locator(f'.participant[data-user-id="{b_id}"]')).to_contain_text("seat 2")
        row = page.locator(f'.live-participant[data-user-id="{b_id}"]')
        expect(row).to_be_visible(timeout=10_000)
        # One numbering: the seat the demo calls "seat 2" is seat 2 in the admin.
        expect(row.locator("td.seat")).to_have_text("2", timeout=10_000)
        assert page.evaluate("window.notReloaded") is True
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "admin-room-live.png"), full_page=True)
        bob.shot("demo-bob-on-seat-2.png")

        # Bob leaves: the admin page sees that too.
        bob.page.click("#btn-leave")
        expect(row).to_have_count(0, timeout=10_000)
        assert alice.errors == [] and bob.errors == []
    finally:
        admin.close()
        alice.context.close()
        bob.context.close()


def test_api_docs_render_without_internet(browser, client_node):
    """Swagger UI draws the operations list with every request to another host refused."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    node = urlsplit(client_node.url).netloc
    elsewhere: list[str] = []

    def only_the_node(route):
        if urlsplit(route.request.url).netloc == node:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_node)
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{client_node.url}/api/docs/")
        operations = page.locator(".opblock")
        expect(operations.first).to_be_visible(timeout=15_000)
        assert operations.count() >= 20
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "api-docs.png"))
        expect(page.locator('.opblock-summary-path[data-path="/api/auth/login"]')).to_have_count(1)
        assert elsewhere == [] and errors == []
    finally:
        context.close()
