"""Every documented way to start a node carries the WebSocket message limit (issue 12,
item 9): rooms.ws.frames.MAX_MESSAGE_BYTES, just above the largest legal client frame.

uvicorn reads it from `--ws-max-size` (its default, 16 MiB, is what a client could make
a node buffer per socket); daphne gets it from voiceroom.asgi itself
(realtime/servers/daphne.py), so a daphne command only has to serve that application.
tests/rooms/test_live_limits.py shows the limit at work on both servers.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from rooms.ws.frames import (
    MAX_CHAT_CHARS,
    MAX_MESSAGE_BYTES,
    MAX_TEXT_FRAME_BYTES,
    MAX_VOICE_BYTES,
    parse_text_frame,
)

ROOT = Path(__file__).resolve().parent.parent.parent
APP = "voiceroom.asgi:application"


def _join_continuations(text: str) -> str:
    return re.sub(r"\\\n\s*", " ", text)


def _snippets(path: Path) -> list[str]:
    """Code in a Markdown file (fenced blocks and inline spans), or a script's lines."""
    text = path.read_text()
    if path.suffix != ".md":
        return _join_continuations(text).splitlines()
    fenced = re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S)
    rest = re.sub(r"```[^\n]*\n.*?```", "", text, flags=re.S)
    inline = [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", rest)]
    lines = [line for block in fenced for line in _join_continuations(block).splitlines()]
    return lines + inline


def _commands(server: str, argv0: str) -> list[tuple[str, list[str]]]:
    """Every `server ... voiceroom.asgi:application` command in the docs and scripts."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "scripts/run-dev"]
    found = []
    for path in files:
        for snippet in _snippets(path):
            if APP not in snippet or not re.search(rf"(^|[\s/]){argv0}\s", snippet):
                continue
            words = shlex.split(snippet.split("#")[0], posix=True)
            start = next(i for i, w in enumerate(words) if w.rsplit("/", 1)[-1] == argv0)
            found.append((f"{path.relative_to(ROOT)}: {snippet.strip()}", words[start:]))
    return found


def _uvicorn_commands() -> list[tuple[str, list[str]]]:
    commands = _commands("uvicorn", "uvicorn")
    compose = yaml.safe_load((ROOT / "docker/compose.yaml").read_text())
    commands.append(("docker/compose.yaml x-app", compose["x-app"]["command"]))
    dockerfile = _join_continuations((ROOT / "docker/Dockerfile").read_text())
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, flags=re.M).group(1)
    commands.append(("docker/Dockerfile CMD", json.loads(cmd)))

    from bench.run import Runner
    from tests.live import server_command

    commands.append(("tests/live.py", server_command("uvicorn", 8000)))
    commands.append(("bench/run.py", Runner.__new__(Runner).server_argv("uvicorn", 8000)))
    return commands


def _option(argv: list[str], name: str) -> str | None:
    values = [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == name]
    values += [w.split("=", 1)[1] for w in argv if w.startswith(name + "=")]
    return values[-1] if values else None  # the last one wins


def test_the_documented_commands_were_all_found():
    """The checks below are not vacuous: they see the commands the docs give."""
    where = [w.split(":")[0] for w, _ in _uvicorn_commands()]
    for expected in ("README.md", "docs/operations.md", "docs/benchmarks.md", "docker/Dockerfile"):
        assert any(w.startswith(expected) for w in where), (expected, where)
    daphne = [w.split(":")[0] for w, _ in _commands("daphne", "daphne")]
    assert "README.md" in daphne and "scripts/run-dev" in daphne, daphne


def _params(commands: list[tuple[str, list[str]]]) -> list:
    return [pytest.param(where, argv, id=where.split(":")[0]) for where, argv in commands]


def _daphne_commands() -> list[tuple[str, list[str]]]:
    from bench.run import Runner
    from tests.live import server_command

    return [
        *_commands("daphne", "daphne"),
        ("tests/live.py", server_command("daphne", 8000)),
        ("bench/run.py", Runner.__new__(Runner).server_argv("daphne", 8000)),
    ]


@pytest.mark.parametrize("where, argv", _params(_uvicorn_commands()))
def test_every_uvicorn_command_sets_the_message_limit(where, argv):
    assert argv[0].rsplit("/", 1)[-1] == "uvicorn" and APP in argv, where
    assert _option(argv, "--ws-max-size") == str(MAX_MESSAGE_BYTES), where


@pytest.mark.parametrize("where, argv", _params(_uvicorn_commands()))
def test_every_uvicorn_command_runs_our_protocols(where, argv):
    """Our WebSocket protocol carries the relay's fast path (issue 17); our HTTP one the
    request-header deadline (realtime/servers/uvicorn.py)."""
    assert _option(argv, "--ws") == "realtime.servers.uvicorn:WebSocketProtocol", where
    assert _option(argv, "--http") == "realtime.servers.uvicorn:HttpToolsProtocol", where
    assert _option(argv, "--ws-per-message-deflate") == "false", where


def test_the_protocol_paths_resolve_as_uvicorn_loads_them():
    from uvicorn.importer import import_from_string

    from realtime.servers.uvicorn import HttpToolsProtocol, WebSocketProtocol

    assert import_from_string("realtime.servers.uvicorn:WebSocketProtocol") is WebSocketProtocol
    assert import_from_string("realtime.servers.uvicorn:HttpToolsProtocol") is HttpToolsProtocol


@pytest.mark.parametrize("where, argv", _params(_daphne_commands()))
def test_every_daphne_command_serves_the_application_that_sets_the_limit(where, argv):
    assert argv[-1] == APP, where
    # daphne's own flags would only raise autobahn's bounds, never lower ours.
    assert _option(argv, "--websocket-max-message-size") is None, where


def test_the_daphne_limit_is_installed_by_the_application():
    import daphne.server

    import voiceroom.asgi  # noqa: F401
    from realtime.servers.daphne import WebSocketFactory

    assert daphne.server.WebSocketFactory is WebSocketFactory


def test_the_limit_is_just_above_the_largest_legal_frame():
    # The largest frame with a use: a whisper of 500 characters outside the BMP, each
    # a 12-byte JSON escape, to the largest user id.
    whisper = json.dumps(
        {"type": "whisper", "to": 2**32 - 1, "text": "\U0001f600" * MAX_CHAT_CHARS},
        separators=(",", ":"),
    )
    assert len(whisper.encode()) == 6044 <= MAX_TEXT_FRAME_BYTES
    assert parse_text_frame(whisper).data["text"] == "\U0001f600" * MAX_CHAT_CHARS
    padded = whisper[:-1] + " " * (MAX_TEXT_FRAME_BYTES - len(whisper)) + "}"
    assert parse_text_frame(padded).type == "whisper"  # the parser reads 8192 bytes
    assert MAX_VOICE_BYTES < MAX_TEXT_FRAME_BYTES < MAX_MESSAGE_BYTES
    assert MAX_MESSAGE_BYTES - MAX_TEXT_FRAME_BYTES == 1024
