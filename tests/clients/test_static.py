"""The demo page and the SDK as Django serves them: /demo/, /static/js/voiceroom.js."""

from __future__ import annotations

from django.contrib.staticfiles import finders
from django.test import Client

from tests.live import ROOT


def test_the_sdk_served_is_the_file_in_clients_js():
    found = finders.find("js/voiceroom.js")

    assert found and open(found, "rb").read() == (ROOT / "clients/js/voiceroom.js").read_bytes()
    for name in ("demo/demo.js", "demo/worklets.js", "demo/demo.css"):
        assert finders.find(name), name


def test_what_is_not_for_browsers_is_not_served():
    for name in (
        "js/package.json",
        "js/package-lock.json",
        "js/README.md",
        "js/test/live.test.mjs",
        "js/testlib/helpers.mjs",
        "js/node_modules/ws/package.json",
        "miniprogram/app.js",
    ):
        assert not finders.find(name), name
    listed = {path for finder in finders.get_finders() for path, _ in finder.list([])}
    assert "js/voiceroom.js" in listed
    assert not [p for p in listed if "node_modules" in p or p.startswith("miniprogram")]


def test_demo_page_loads_the_sdk_and_its_code():
    response = Client().get("/demo/")

    assert response.status_code == 200
    html = response.content.decode()
    assert '<script type="module" src="/static/demo/demo.js">' in html
    assert "/static/demo/demo.css" in html
    assert 'id="auth-form"' in html
    # demo.js imports the SDK by a relative path that resolves to /static/js/voiceroom.js.
    assert "from '../js/voiceroom.js'" in (ROOT / "clients/demo/demo.js").read_text()
