"""The demo page and the SDK as Django serves them: /demo/, /static/js/voiceroom.js."""

from __future__ import annotations

import re

from django.contrib.staticfiles import finders
from django.test import Client

from tests.live import ROOT


def sdk_modules() -> list[str]:
    """The modules clients/js/voiceroom.js imports, as paths under clients/js/."""
    entry = (ROOT / "clients/js/voiceroom.js").read_text()
    return sorted({m.removeprefix("./") for m in re.findall(r"from '(\./[^']+)'", entry)})


def test_the_sdk_served_is_the_file_in_clients_js():
    found = finders.find("js/voiceroom.js")

    assert found and open(found, "rb").read() == (ROOT / "clients/js/voiceroom.js").read_bytes()
    for name in ("demo/demo.js", "demo/worklets.js", "demo/demo.css"):
        assert finders.find(name), name


def test_every_module_of_the_sdk_is_served():
    # The entry re-exports ES modules under js/voiceroom/; a browser fetches each one.
    modules = sdk_modules()
    on_disk = sorted(f"voiceroom/{p.name}" for p in (ROOT / "clients/js/voiceroom").glob("*.js"))

    assert modules and set(modules) <= set(on_disk)
    for name in on_disk:
        found = finders.find(f"js/{name}")
        assert found and open(found, "rb").read() == (ROOT / "clients/js" / name).read_bytes()


def test_the_miniprogram_gets_the_sdk_and_its_modules():
    # WeChat tools compile files inside the mini-program folder only: lib/ holds the
    # entry and every module it imports.
    lib = ROOT / "clients/miniprogram/lib"
    for name in ["voiceroom.js", *sdk_modules()]:
        assert (lib / name).read_bytes() == (ROOT / "clients/js" / name).read_bytes(), name


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


def test_the_miniprogram_opus_codec_is_the_recorded_npm_copy_with_its_licences():
    # vendor/opusscript/ is made by clients/miniprogram/scripts/vendor-opus.mjs from the
    # version package-lock.json pins; its package.json records each file's sha256.
    import hashlib
    import json

    mp = ROOT / "clients/miniprogram"
    manifest = json.loads((mp / "vendor/opusscript/package.json").read_text())
    lock = json.loads((mp / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/opusscript"]["version"]
    assert manifest["vendored"]["from"] == f"opusscript@{pinned}"
    files = manifest["vendored"]["sha256"]
    assert {"opusscript_native_nasm.js", "LICENSE", "COPYING.libopus"} <= set(files)
    for name, digest in files.items():
        data = (mp / "vendor/opusscript" / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, name
    # No WebAssembly to load: a mini-program on iOS has none.
    assert not list((mp / "vendor").rglob("*.wasm"))
