"""The admin's Live page in a real Chromium against a real node: a room people are in
shows up, and follows them without a reload. Screenshot: test-artifacts/admin-live.png."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys

import pytest

from tests.clients.test_demo_browser import ARTIFACTS, Person, browser  # noqa: F401 (fixture)
from tests.live import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.processes]

WATCHER = ("live-watcher", "Watch-er-pass-5521")


@pytest.fixture(scope="module")
def watcher(client_node):
    done = subprocess.run(
        [sys.executable, "manage.py", "createsuperuser", "--noinput"],
        cwd=ROOT,
        env={
            **client_node.env,
            "DJANGO_SUPERUSER_USERNAME": WATCHER[0],
            "DJANGO_SUPERUSER_PASSWORD": WATCHER[1],
            "DJANGO_SUPERUSER_EMAIL": "",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return WATCHER


def test_live_page_lists_the_room_and_follows_it_in_place(browser, client_node, watcher):  # noqa: F811
    from playwright.sync_api import expect

    room_name = f"Live {secrets.token_hex(2)}"
    alice = Person(browser, client_node.url, "Alice")
    bob = Person(browser, client_node.url, "Bob", "?codec=pcm")
    admin = browser.new_context(viewport={"width": 1280, "height": 700})
    try:
        alice.sign_up()
        alice.page.fill("#room-name", room_name)
        alice.page.fill("#room-seats", "2")
        alice.page.click("#btn-create")
        alice.page.wait_for_selector("#room:not([hidden])")
        room_id = alice.stat("s.client.roomId")

        page = admin.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{client_node.url}/admin/login/?next=/admin/rooms/room/")
        page.fill("#id_username", watcher[0])
        page.fill("#id_password", watcher[1])
        page.click("input[type=submit]")
        page.click("#live-rooms-link")  # from the rooms list
        row = page.locator(f'#live-rooms tr[data-room="{room_id}"]')
        expect(row).to_contain_text(room_name)
        expect(row.locator("td").nth(2)).to_have_text("1")
        page.evaluate("window.notReloaded = true")

        # Bob joins and takes a seat: the row follows, the page is not reloaded.
        bob.sign_up()
        bob.page.locator(".room-row", has_text=room_name).locator("button.join").click()
        bob.page.wait_for_selector("#room:not([hidden])")
        bob.page.click('.seat[data-index="0"] .seat-main')
        expect(bob.page.locator('.seat[data-index="0"]')).to_contain_text("seat 1")
        expect(row.locator("td").nth(2)).to_have_text("2", timeout=10_000)
        # Seats exist: Bob, seated, may speak; Alice, not seated, may not.
        expect(row.locator("td").nth(5)).to_have_text(re.compile(r"^bob[0-9a-f]{6}$"))
        assert page.evaluate("window.notReloaded") is True
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "admin-live.png"), full_page=True)

        # Everyone leaves: the room is no longer live.
        bob.page.click("#btn-leave")
        alice.page.click("#btn-leave")
        expect(row).to_have_count(0, timeout=10_000)
        expect(page.locator("#live-count")).to_have_text("0")
        assert errors == [] and alice.errors == [] and bob.errors == []
    finally:
        admin.close()
        alice.context.close()
        bob.context.close()
