"""The JavaScript SDK speaks the server's contract: close codes and voice constants.

The SDK's tables are read from its source (clients/js/voiceroom/constants.js), not run,
so this needs no Node; a code renamed, renumbered, added or dropped on either side fails.
"""

from __future__ import annotations

import importlib
import re

import pytest

from rooms.contract import FINAL_CLOSE_CODES, CloseCode
from tests.live import ROOT

CONSTANTS = ROOT / "clients/js/voiceroom/constants.js"
# Standard codes the client meets without the server sending them: its own close on a
# page unload (1001) and a socket lost without a close frame (1006).
CLIENT_ONLY = {"GOING_AWAY": 1001, "ABNORMAL": 1006}


def _frozen(name: str, opening: str, closing: str) -> str:
    """The body of `export const <name> = Object.freeze(<opening> ... <closing>);`."""
    source = CONSTANTS.read_text()
    match = re.search(
        rf"export const {name} = Object\.freeze\({re.escape(opening)}(.*?){re.escape(closing)}\);",
        source,
        re.S,
    )
    assert match, f"no `export const {name} = Object.freeze(...)` in {CONSTANTS}"
    return re.sub(r"//[^\n]*", "", match.group(1))


def sdk_close_table() -> dict[str, int]:
    body = _frozen("CLOSE", "{", "}")
    entries = [e.strip() for e in body.split(",") if e.strip()]
    table = {}
    for entry in entries:
        match = re.fullmatch(r"([A-Z_]+):\s*(\d+)", entry)
        assert match, f"unexpected entry in the SDK's CLOSE: {entry!r}"
        assert match.group(1) not in table, f"CLOSE.{match.group(1)} is defined twice"
        table[match.group(1)] = int(match.group(2))
    return table


def sdk_final_codes() -> list[int]:
    close = sdk_close_table()
    codes = []
    for entry in (e.strip() for e in _frozen("FINAL_CLOSE_CODES", "[", "]").split(",")):
        if not entry:
            continue
        if entry.isdigit():
            codes.append(int(entry))
        else:
            match = re.fullmatch(r"CLOSE\.([A-Z_]+)", entry)
            assert match and match.group(1) in close, f"bad FINAL_CLOSE_CODES entry {entry!r}"
            codes.append(close[match.group(1)])
    return codes


def test_sdk_close_codes_equal_the_servers():
    sdk = sdk_close_table()
    server = {code.name: code.value for code in CloseCode}

    # Every code the server sends, under the same name and number.
    assert {name: sdk.get(name) for name in server} == server
    # Anything else in the SDK is a standard code the server never sends.
    assert {name: n for name, n in sdk.items() if name not in server} == CLIENT_ONLY
    assert not set(CLIENT_ONLY.values()) & set(server.values())
    # One name per number.
    assert len(set(sdk.values())) == len(sdk)


def test_sdk_final_close_codes_equal_the_servers():
    sdk = sdk_final_codes()

    assert len(sdk) == len(set(sdk)), sdk
    assert set(sdk) == {int(code) for code in FINAL_CLOSE_CODES}


def _server_voice_constants():
    for module in ("rooms.contract", "rooms.ws.frames"):
        found = importlib.import_module(module)
        if all(hasattr(found, n) for n in ("VOICE_ROOM", "VOICE_WHISPER", "MAX_VOICE_BYTES")):
            return found
    pytest.skip("the server's voice constants are in neither rooms.contract nor rooms.ws.frames")


def test_sdk_voice_constants_equal_the_servers():
    server = _server_voice_constants()
    source = CONSTANTS.read_text()
    sdk = {
        name: int(value) for name, value in re.findall(r"export const ([A-Z_]+) = (\d+);", source)
    }

    assert sdk["VOICE_ROOM"] == server.VOICE_ROOM
    assert sdk["VOICE_WHISPER"] == server.VOICE_WHISPER
    assert sdk["MAX_VOICE_BYTES"] == server.MAX_VOICE_BYTES
    assert sdk["VOICE_HEADER_BYTES"] == 9 == getattr(server, "HEADER_SIZE", 9)
