"""The relay's fast path under our uvicorn WebSocket protocol, in one process.

realtime.servers.uvicorn.WebSocketProtocol is driven here as uvicorn drives it (a real
handshake through `data_received`, an ASGI app that accepts), over a transport that
records what it is given. tests/rooms/test_live_fast_path.py checks the same on real
nodes and real sockets.
"""

from __future__ import annotations

import asyncio
import base64
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st
from uvicorn.config import Config
from uvicorn.server import ServerState
from websockets.protocol import State
from websockets.server import ServerProtocol

from realtime.relay import Endpoint, Relay, stats
from realtime.servers.uvicorn import WebSocketProtocol, _Inbox
from realtime.servers.wire import binary_frame


def asgi_frame(data: bytes) -> bytes:
    """What uvicorn's websockets-sansio protocol writes for `websocket.send` of `data`."""
    conn = ServerProtocol(state=State.OPEN)
    conn.send_binary(data)
    return b"".join(conn.data_to_send())


@given(st.one_of(st.binary(max_size=300), st.integers(0, 70_000).map(lambda n: b"\x07" * n)))
def test_the_frame_encoded_once_is_what_websockets_writes(data):
    assert binary_frame(data) == asgi_frame(data)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 4105, 65535, 65536, 70_000])
def test_every_length_form_at_its_bounds(size):
    data = os.urandom(size)
    assert binary_frame(data) == asgi_frame(data)


class RecordingTransport:
    """An asyncio transport that records writes; the protocol's flow control is driven
    by the test, as the event loop drives it when the buffer passes its marks."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def get_extra_info(self, name, default=None):
        return default

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def accepted_protocol(per_message_deflate: bool = False):
    """A WebSocketProtocol after a real handshake, and the ASGI `send` its app got."""
    sends = []
    accepted = asyncio.Event()

    async def app(scope, receive, send):
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        sends.append(send)
        accepted.set()
        while (await receive())["type"] != "websocket.disconnect":
            pass

    config = Config(app=app, ws_per_message_deflate=per_message_deflate, lifespan="off")
    config.load()
    protocol = WebSocketProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    transport = RecordingTransport()
    protocol.connection_made(transport)
    key = base64.b64encode(os.urandom(16)).decode()
    extensions = "Sec-WebSocket-Extensions: permessage-deflate\r\n" if per_message_deflate else ""
    protocol.data_received(
        (
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extensions}\r\n"
        ).encode()
    )
    await asyncio.wait_for(accepted.wait(), 2)
    assert transport.writes[0].startswith(b"HTTP/1.1 101")
    transport.writes.clear()
    return protocol, transport, sends[0]


async def test_the_fast_path_writes_what_the_asgi_send_writes():
    protocol, transport, send = await accepted_protocol()
    data = b"\x01\x00\x00\x00\x07\x00\x00\x00\x01" + os.urandom(120)
    await send({"type": "websocket.send", "bytes": data})
    by_asgi = transport.writes.pop()

    relay = Relay()
    speaker = Endpoint(room_id=1, user_id=7, send=lambda m: None)
    listener = Endpoint(room_id=1, user_id=8, send=send)
    assert listener.write is not None  # the protocol offered its fast path
    speaker.can_speak = True
    relay.add(speaker)
    relay.add(listener)
    direct = stats.deliveries_direct
    relay.voice_in(speaker, data[9:])
    assert transport.writes == []  # queued until the end of the loop turn
    await asyncio.sleep(0)
    assert transport.writes == [by_asgi]
    assert stats.deliveries_direct == direct + 1
    protocol.connection_lost(None)


async def test_frames_of_one_loop_turn_leave_in_one_write_before_any_asgi_send():
    protocol, transport, send = await accepted_protocol()
    protocol.write_frame(binary_frame(b"one"))
    protocol.write_frame(binary_frame(b"two"))
    await asyncio.sleep(0)
    assert transport.writes == [binary_frame(b"one") + binary_frame(b"two")]

    # A text event sent by the app in the same turn does not overtake queued voice.
    transport.writes.clear()
    protocol.write_frame(binary_frame(b"three"))
    await send({"type": "websocket.send", "text": "{}"})
    assert transport.writes == [binary_frame(b"three"), asgi_text(b"{}")]
    await asyncio.sleep(0)
    assert len(transport.writes) == 2  # nothing written twice
    protocol.connection_lost(None)


def asgi_text(data: bytes) -> bytes:
    conn = ServerProtocol(state=State.OPEN)
    conn.send_text(data)
    return b"".join(conn.data_to_send())


async def test_flow_control_reaches_the_endpoint_and_the_relay_drops_and_counts():
    protocol, transport, send = await accepted_protocol()
    relay = Relay()
    speaker = Endpoint(room_id=1, user_id=1, send=lambda m: None)
    speaker.can_speak = True
    listener = Endpoint(room_id=1, user_id=2, send=send)
    relay.add(speaker)
    relay.add(listener)

    protocol.pause_writing()  # what the transport calls past its high-water mark
    assert listener.busy and listener.stalled_since and listener.stuck()
    before = stats.dropped_backlog
    relay.voice_in(speaker, b"lost")
    await asyncio.sleep(0)
    assert stats.dropped_backlog == before + 1 and listener.dropped == 1
    assert transport.writes == []

    protocol.resume_writing()
    assert not listener.busy and listener.stalled_since == 0.0 and not listener.stuck()
    relay.voice_in(speaker, b"kept")
    await asyncio.sleep(0)
    assert [w[2 + 9 :] for w in transport.writes] == [b"kept"]
    protocol.connection_lost(None)


async def test_nothing_is_written_after_the_close_and_a_close_goes_after_queued_voice():
    protocol, transport, send = await accepted_protocol()
    protocol.write_frame(binary_frame(b"last words"))
    await send({"type": "websocket.close", "code": 4014})
    assert transport.writes[0] == binary_frame(b"last words")
    assert transport.writes[1][:1] == b"\x88"  # the close frame, after the voice
    protocol.write_frame(binary_frame(b"too late"))
    await asyncio.sleep(0)
    assert len(transport.writes) == 2
    protocol.connection_lost(None)


async def test_a_compressed_socket_keeps_the_asgi_path():
    protocol, transport, send = await accepted_protocol(per_message_deflate=True)
    assert protocol.conn.extensions  # deflate was negotiated
    listener = Endpoint(room_id=1, user_id=2, send=send)
    assert listener.server is not None and listener.write is None
    protocol.connection_lost(None)


async def test_the_handshake_request_is_not_kept_once_the_relay_has_the_socket():
    protocol, transport, send = await accepted_protocol()
    assert protocol.request is not None
    Endpoint(room_id=1, user_id=2, send=send)
    assert protocol.request is None and protocol.response is None
    protocol.connection_lost(None)


async def test_the_lighter_receive_queue_keeps_order_and_wakes_its_readers():
    inbox = _Inbox(asyncio.get_running_loop())
    assert inbox.empty()
    reader = asyncio.ensure_future(inbox.get())
    other = asyncio.ensure_future(inbox.get())  # a second reader is served too
    await asyncio.sleep(0)
    assert not reader.done()
    inbox.put_nowait("a")
    inbox.put_nowait("b")
    assert {await reader, await other} == {"a", "b"} and inbox.empty()
    reader = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    reader.cancel()  # a cancelled reader leaves the queue usable
    await asyncio.sleep(0)
    inbox.put_nowait("c")
    assert await asyncio.wait_for(inbox.get(), 1) == "c"


async def test_a_cancelled_send_waiting_for_the_buffer_does_not_cancel_the_others():
    protocol, transport, send = await accepted_protocol()
    protocol.pause_writing()
    first = asyncio.ensure_future(send({"type": "websocket.send", "text": "1"}))
    second = asyncio.ensure_future(send({"type": "websocket.send", "text": "2"}))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    assert first.cancelled() and not second.done() and transport.writes == []
    protocol.resume_writing()
    await asyncio.wait_for(second, 1)
    assert transport.writes == [asgi_text(b"2")]
    protocol.connection_lost(None)
