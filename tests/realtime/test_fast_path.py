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


@pytest.fixture
def flush_window(monkeypatch):
    """The process's coalescer with a flush window (VOICEROOM_VOICE_FLUSH_MS) of 50 ms."""
    from realtime.servers import uvicorn as ours

    monkeypatch.setattr(ours._coalescer, "window_s", 0.05)
    return 0.05


async def test_a_flush_window_gathers_a_sockets_frames_of_several_turns_into_one_write(
    flush_window,
):
    protocol, transport, send = await accepted_protocol()
    loop = asyncio.get_running_loop()
    started = loop.time()
    protocol.write_frame(binary_frame(b"one"))
    await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    protocol.write_frame(binary_frame(b"two"))
    assert transport.writes == []  # held: several loop turns, still inside the window
    assert protocol.buffered() == len(binary_frame(b"one")) + len(binary_frame(b"two"))
    for _ in range(40):  # polled: the flush is a timer of the protocol's own
        if transport.writes:
            break
        await asyncio.sleep(0.005)
    waited = loop.time() - started
    assert transport.writes == [binary_frame(b"one") + binary_frame(b"two")]
    assert flush_window - 0.005 <= waited < flush_window + 0.1
    # The next frame opens a new window, and an ASGI send still goes after held voice.
    protocol.write_frame(binary_frame(b"three"))
    await asyncio.sleep(0.01)
    await send({"type": "websocket.send", "text": "{}"})
    assert transport.writes[1:] == [binary_frame(b"three"), asgi_text(b"{}")]
    await asyncio.sleep(flush_window + 0.02)
    assert len(transport.writes) == 3  # nothing written twice
    protocol.connection_lost(None)


async def test_a_flush_window_holds_nothing_past_the_close(flush_window):
    protocol, transport, send = await accepted_protocol()
    protocol.write_frame(binary_frame(b"last words"))
    await send({"type": "websocket.close", "code": 1000})
    assert transport.writes[0] == binary_frame(b"last words")
    protocol.write_frame(binary_frame(b"too late"))
    await asyncio.sleep(flush_window + 0.02)
    assert len(transport.writes) == 2
    protocol.connection_lost(None)


def test_the_window_comes_from_the_setting(settings):
    from realtime.servers.uvicorn import voice_flush_window_s

    assert voice_flush_window_s() == 0.0  # the default: one loop turn
    settings.VOICEROOM_VOICE_FLUSH_MS = 20
    assert voice_flush_window_s() == 0.02


def test_the_setting_is_checked_when_the_node_starts():
    import subprocess
    import sys

    from tests.live import ROOT

    for value, ok in (("20", True), ("-1", False), ("500", False)):
        done = subprocess.run(
            [sys.executable, "-c", "import django; django.setup()"],
            cwd=ROOT,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "voiceroom.settings",
                "VOICEROOM_VOICE_FLUSH_MS": value,
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (done.returncode == 0) is ok, done.stderr[-2000:]
        if not ok:
            assert "VOICEROOM_VOICE_FLUSH_MS must be between 0 and 100" in done.stderr


# -- inbound: binary messages handed to the application as they are read ------------------


def client_frame(opcode, data: bytes, fin: bool = True) -> bytes:
    """A frame as a client sends it (masked)."""
    from websockets.frames import Frame, Opcode

    return Frame(Opcode(opcode), data, fin=fin).serialize(mask=True, extensions=[])


async def inbound_protocol(take=lambda data: True):
    """A protocol after the handshake whose app records every message it receives, and
    whose voice handler (`take`) records what it is handed."""
    received: list = []
    handed: list[bytes] = []
    accepted = asyncio.Event()

    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        accepted.set()
        while True:
            message = await receive()
            data = message.get("bytes", message.get("text", message["type"]))
            received.append(data)
            ARRIVALS.append(data)
            if message["type"] == "websocket.disconnect":
                return

    def sink(data: bytes) -> bool:
        if take(data):
            handed.append(bytes(data))
            ARRIVALS.append(bytes(data))
            return True
        return False

    config = Config(app=app, ws_per_message_deflate=False, lifespan="off", ws_max_size=9216)
    config.load()
    protocol = WebSocketProtocol(config, ServerState(), {}, _loop=asyncio.get_running_loop())
    transport = RecordingTransport()
    protocol.connection_made(transport)
    key = base64.b64encode(os.urandom(16)).decode()
    protocol.data_received(
        (
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    await asyncio.wait_for(accepted.wait(), 2)
    await asyncio.sleep(0)  # the app waits in receive()
    assert protocol.take_voice(sink)
    transport.writes.clear()
    return protocol, transport, received, handed


async def test_voice_is_handed_over_as_it_is_read_even_a_byte_at_a_time():
    protocol, transport, received, handed = await inbound_protocol()
    frames = [os.urandom(n) for n in (1, 120, 125, 126, 4096)]
    stream = b"".join(client_frame(2, f) for f in frames)
    protocol.data_received(stream[:7])
    for i in range(7, len(stream)):
        protocol.data_received(stream[i : i + 1])
    assert handed == frames  # unmasked, whole, in order, without a loop turn
    assert received == []  # none through the ASGI receive
    assert not protocol.read_paused
    protocol.data_received(stream)  # and many in one read
    assert handed == frames * 2
    protocol.connection_lost(None)


async def test_a_text_frame_first_keeps_its_place():
    protocol, transport, received, handed = await inbound_protocol()
    protocol.data_received(
        client_frame(1, b'{"type":"ping"}') + client_frame(2, b"a") + client_frame(2, b"b")
    )
    # The text is queued for the app: the voice after it waits its turn behind it.
    assert handed == []
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert received == ['{"type":"ping"}', b"a", b"b"]
    # The app waits again: voice is handed over at once.
    protocol.data_received(client_frame(2, b"c"))
    assert handed == [b"c"] and len(received) == 3
    protocol.connection_lost(None)


async def test_a_frame_the_handler_declines_arrives_through_receive_in_order():
    protocol, transport, received, handed = await inbound_protocol(take=lambda d: d != b"no")
    protocol.data_received(client_frame(2, b"no") + client_frame(2, b"yes"))
    assert handed == []  # "yes" may not overtake "no"
    for _ in range(3):
        await asyncio.sleep(0)
    assert received == [b"no", b"yes"]
    protocol.data_received(client_frame(2, b"yes"))
    assert handed == [b"yes"]
    protocol.connection_lost(None)


async def test_pings_fragments_and_oversized_frames_keep_websockets_rules():
    protocol, transport, received, handed = await inbound_protocol()
    protocol.data_received(client_frame(9, b"hi"))  # ping: answered by the parser
    assert transport.writes == [b"\x8a\x02hi"]
    # A fragmented message: the parser assembles it, and has the stream from then on.
    protocol.data_received(client_frame(2, b"frag", fin=False) + client_frame(0, b"ment"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert received == [b"fragment"] and handed == []
    protocol.data_received(client_frame(2, b"after"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert received == [b"fragment", b"after"] and handed == []
    protocol.connection_lost(None)

    protocol, transport, received, handed = await inbound_protocol()
    protocol.data_received(client_frame(2, b"x" * 9217))  # over --ws-max-size
    close = transport.writes[-1]
    assert handed == [] and close[:1] == b"\x88" and close[2:4] == b"\x03\xf1"  # 1009
    protocol.connection_lost(None)


async def test_an_unmasked_client_frame_is_a_protocol_error_as_before():
    protocol, transport, received, handed = await inbound_protocol()
    protocol.data_received(b"\x82\x03abc")
    close = transport.writes[-1]
    assert handed == [] and close[:1] == b"\x88" and close[2:4] == b"\x03\xea"  # 1002
    protocol.connection_lost(None)


async def test_nothing_is_handed_over_after_a_close():
    protocol, transport, received, handed = await inbound_protocol()
    protocol.data_received(client_frame(8, b"\x03\xe8") + client_frame(2, b"late"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert handed == [] and b"late" not in received
    protocol.connection_lost(None)


ARRIVALS: list = []  # what the app of `inbound_protocol` got, either way, in order


@given(
    st.lists(
        st.tuples(st.sampled_from([1, 2, 2, 2]), st.binary(max_size=300)), min_size=1, max_size=12
    ),
    st.lists(st.integers(1, 400), min_size=1, max_size=30),
    st.lists(st.booleans(), min_size=1, max_size=8),
)
def test_any_mix_cut_anywhere_arrives_whole_and_in_order(messages, cuts, yields):
    """Text and voice, read in any pieces, with the app sometimes still busy: every
    message reaches the app exactly once, whole, in the order sent, whichever way."""

    async def scenario():
        protocol, transport, received, handed = await inbound_protocol()
        ARRIVALS.clear()
        stream = b"".join(
            client_frame(op, data if op == 2 else data.hex().encode()) for op, data in messages
        )
        pos = k = 0
        while pos < len(stream):
            cut = cuts[k % len(cuts)]
            protocol.data_received(stream[pos : pos + cut])
            pos += cut
            if yields[k % len(yields)]:  # otherwise the next piece comes in the same turn
                await asyncio.sleep(0)
            k += 1
        for _ in range(len(messages) * 2 + 2):
            await asyncio.sleep(0)
        got = [d.encode() if isinstance(d, str) else d for d in ARRIVALS]
        assert got == [data if op == 2 else data.hex().encode() for op, data in messages]
        protocol.connection_lost(None)

    asyncio.run(scenario())
