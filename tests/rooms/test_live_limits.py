"""What a real server reads from a client, on both servers (issue 12, items 9 and 10).

- A WebSocket message over rooms.ws.frames.MAX_MESSAGE_BYTES closes the socket with 1009
  as soon as its frame header arrives, unbuffered: the node's memory does not grow by
  what the client sends (before, uvicorn read up to 16 MiB and daphne 1 MiB of each
  message, then the application refused it). The largest legal frames still work.
- Text that UTF-8 cannot carry (a lone surrogate escape) is refused with an `error`
  `invalid`; nobody's socket fails and the node logs no traceback.

With REDIS_URL set, the nodes use the Redis channel layer (tests/live.py passes the
environment on).
"""

from __future__ import annotations

import asyncio
import json
import struct
import sys

import psutil
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from rooms.ws.frames import MAX_MESSAGE_BYTES, MAX_TEXT_FRAME_BYTES, MAX_VOICE_BYTES
from tests.live import Api, Node, base_env, free_port
from tests.rooms.test_live_nodes import Member, header, join

pytestmark = [pytest.mark.processes]

SERVERS = ["daphne", "uvicorn"]
MESSAGE_TOO_BIG = 1009


@pytest.fixture(params=SERVERS)
def node(request, live_db):
    env = base_env(DATABASE_URL=live_db, VOICEROOM_MAX_SOCKETS_PER_USER="0")
    server = Node(request.param, env).start()
    yield server
    server.stop()


def rss_mib(node: Node) -> float:
    return psutil.Process(node.proc.pid).memory_info().rss / 2**20


async def room_with(node: Node, people: int) -> tuple[dict, list[tuple[Api, dict]]]:
    users = [await asyncio.to_thread(Api.user, node.url) for _ in range(people)]
    room = await asyncio.to_thread(
        users[0][0].ok, "POST", "/api/rooms/", {"name": "limits", "seat_count": 0}
    )
    return room, users


async def closed_with(ws) -> int | None:
    """The close code the server sent, once the connection is over."""
    try:
        async with asyncio.timeout(10):
            while True:
                await ws.recv()
    except ConnectionClosed:
        pass
    rcvd = ws.protocol.close_rcvd
    return rcvd.code if rcvd else None


def raw_frame_header(opcode: int, length: int, *, fin: bool = True) -> bytes:
    """A client frame header (masked, as clients must) announcing `length` bytes."""
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        head = struct.pack(">BB", first, 0x80 | length)
    elif length < 2**16:
        head = struct.pack(">BBH", first, 0x80 | 126, length)
    else:
        head = struct.pack(">BBQ", first, 0x80 | 127, length)
    return head + b"\x00\x00\x00\x00"  # the mask key; zero leaves the payload as is


async def test_legal_frames_of_the_largest_size_still_work(node):
    room, users = await room_with(node, 2)
    a = await join(node, *users[0], room["id"])
    b = await join(node, *users[1], room["id"])
    await a.event("participant.joined")

    # The largest frame with a use: 500 characters outside the BMP, each a 12-byte escape.
    whisper = json.dumps({"type": "whisper", "to": b.id, "text": "\U0001f600" * 500})
    assert whisper.isascii() and len(whisper) < MAX_TEXT_FRAME_BYTES
    await a.ws.send(whisper)
    assert (await b.event("whisper"))["text"] == "\U0001f600" * 500
    # A text frame of exactly MAX_TEXT_FRAME_BYTES (whitespace is legal JSON).
    chat = json.dumps({"type": "chat", "text": "\u4e2d" * 500}, ensure_ascii=False)
    chat = chat[:-1] + " " * (MAX_TEXT_FRAME_BYTES - len(chat.encode())) + "}"
    assert len(chat.encode()) == MAX_TEXT_FRAME_BYTES
    await a.ws.send(chat)
    assert (await b.event("chat"))["text"] == "\u4e2d" * 500
    # The largest voice frame.
    await a.ws.send(b"\x07" * MAX_VOICE_BYTES)
    frame = await b.frame()
    assert header(frame)[:2] == (1, a.id) and frame[9:] == b"\x07" * MAX_VOICE_BYTES
    # Just over a protocol limit, under the message limit: an `error`, the socket stays.
    await a.ws.send(b"\x07" * (MAX_VOICE_BYTES + 1))
    assert (await a.event("error"))["code"] == "frame_too_large"
    await a.ws.send(" " * (MAX_MESSAGE_BYTES - 2) + "{}")  # exactly at the limit
    assert (await a.event("error"))["code"] == "frame_too_large"
    await a.ws.send(json.dumps({"type": "chat", "text": "still here"}))
    assert (await b.event("chat"))["text"] == "still here"


async def test_a_message_over_the_limit_closes_1009_unbuffered_and_the_room_goes_on(node):
    room, users = await room_with(node, 2)
    b = await join(node, *users[1], room["id"])
    api, user = users[0]
    ticket_path = f"/api/rooms/{room['id']}/ticket"
    await asyncio.to_thread(api.ok, "POST", f"/api/rooms/{room['id']}/join", {})

    async def socket_of_a() -> Member:
        ticket = (await asyncio.to_thread(api.ok, "POST", ticket_path, {}))["ticket"]
        ws = await ws_connect(f"{node.ws}/ws/rooms/{room['id']}/?ticket={ticket}")
        assert json.loads(await ws.recv())["type"] == "welcome"
        return Member(ws, {}, user)

    # One byte over, whole: closed, not answered with an error.
    a = await socket_of_a()
    await a.ws.send(b"\x01" * (MAX_MESSAGE_BYTES + 1))
    assert await closed_with(a.ws) == MESSAGE_TOO_BIG
    # Like any dropped socket: its member is in the resume window, not gone.
    dropped = await b.event(
        "participant.updated", where=lambda e: e["participant"]["user_id"] == a.id
    )
    assert dropped["participant"]["connected"] is False
    # Many small fragments that add up to more: closed too.
    a = await socket_of_a()
    await a.ws.send([b"\x01" * 1024] * (MAX_MESSAGE_BYTES // 1024 + 1))
    assert await closed_with(a.ws) == MESSAGE_TOO_BIG

    # 15 MiB announced, 5 times: each socket is closed at the header, with its payload
    # still on the way, so the node never holds it (before: +90 MiB for these five).
    rss_before = rss_mib(node)
    big = 15 * 2**20
    for opcode in (0x2, 0x1, 0x2, 0x1, 0x2):
        a = await socket_of_a()
        # Write the header and the first MiB on the socket the library opened, then stop:
        # a client that sends as fast as it can would race the close with a TCP reset.
        a.ws.transport.write(raw_frame_header(opcode, big) + b"\x01" * 2**20)
        assert await closed_with(a.ws) == MESSAGE_TOO_BIG, opcode
    grown = rss_mib(node) - rss_before
    assert grown < 10, f"the node grew by {grown:.1f} MiB"

    # The member can come back, and the room never noticed.
    a = await socket_of_a()
    await a.ws.send(json.dumps({"type": "chat", "text": "back"}))
    assert (await b.event("chat"))["text"] == "back"


async def test_manage_py_runserver_has_the_limit_too(live_db):
    """daphne's runserver builds its own Server; it serves voiceroom.asgi as well."""
    port = free_port()
    argv = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    node = Node("runserver", base_env(DATABASE_URL=live_db), port=port, argv=argv).start()
    try:
        room, users = await room_with(node, 1)
        a = await join(node, *users[0], room["id"])
        await a.ws.send(b"\x01" * (MAX_MESSAGE_BYTES + 1))
        assert await closed_with(a.ws) == MESSAGE_TOO_BIG
    finally:
        node.stop()


async def test_a_lone_surrogate_in_chat_is_refused_and_no_socket_or_log_suffers(node):
    room, users = await room_with(node, 3)
    members = [await join(node, *u, room["id"]) for u in users]
    a, b, c = members
    await a.event("participant.joined", where=lambda e: e["participant"]["user_id"] == c.id)

    for frame in (
        {"type": "chat", "text": "hi \ud800"},
        {"type": "whisper", "to": b.id, "text": "\udfff psst"},
    ):
        await a.ws.send(json.dumps(frame))  # the escape `\ud800`: valid UTF-8 on the wire
        error = await a.event("error")
        assert error["code"] == "invalid", error
    await a.ws.send(json.dumps({"type": "chat", "text": "after"}))
    for member in members:
        event = await member.event("chat")
        assert event["text"] == "after", event  # the refused ones reached nobody
    log = node.output()
    assert "Traceback" not in log and "surrogates not allowed" not in log, log
