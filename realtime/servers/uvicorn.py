"""uvicorn's protocols of our own: HTTP with a deadline for request headers, and
WebSocket with a fast path for the relay.

HTTP (`--http realtime.servers.uvicorn:HttpToolsProtocol`): uvicorn's httptools protocol,
with a deadline for request headers:

uvicorn starts no timer when a connection opens: a client that connects and sends
nothing, or sends its headers a byte at a time (slowloris), holds a socket and its
memory for as long as it likes, before any credential is checked. This protocol closes
such a connection when a request's headers are not complete VOICEROOM_HANDSHAKE_TIMEOUT_S
after the connection opened (or after the request's first byte, for later requests on a
kept-alive connection; uvicorn's own keep-alive timeout covers the idle time between).

WebSocket (`--ws realtime.servers.uvicorn:WebSocketProtocol`): uvicorn's websockets-sansio
protocol (the ASGI side unchanged), plus what the relay needs to send voice for less than
the ASGI `send` costs; see `WebSocketProtocol` below and docs/benchmarks.md.

Every documented uvicorn command (README, docs/, docker/, bench/, tests/live.py) passes
both; tests/voiceroom/test_server_commands.py checks it.

Importing this module also quiets one uvicorn log line a client can trigger at will: a
text frame that is not UTF-8 is answered correctly (close 1007) but logged as an ERROR
with a traceback, so any client could fill the logs. It becomes one INFO line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover (websockets built without its C extension)
    from websockets.utils import apply_mask

if TYPE_CHECKING:
    from realtime.relay import Endpoint

logger = logging.getLogger(__name__)

_timeout_s: float | None = None

_CLIENT_UTF8 = "Invalid UTF-8 sequence received from client."


class _ClientErrorsAreNotServerErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == _CLIENT_UTF8:
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg = _CLIENT_UTF8 + " Closed with 1007."
            return logging.getLogger(record.name).isEnabledFor(logging.INFO)
        return True


logging.getLogger("uvicorn.error").addFilter(_ClientErrorsAreNotServerErrors())


def handshake_timeout_s() -> float:
    global _timeout_s
    if _timeout_s is None:
        from django.conf import settings

        _timeout_s = float(settings.VOICEROOM_HANDSHAKE_TIMEOUT_S)
    return _timeout_s


class HttpToolsProtocol(_HttpToolsProtocol):
    _header_deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        timeout = handshake_timeout_s()
        if self._header_deadline is None and timeout > 0:
            self._header_deadline = self.loop.call_later(timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.abort()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


# -- WebSocket ---------------------------------------------------------------------------


class _Coalescer:
    """Writes what the relay gave each socket during one flush window as one write.

    Window 0 (the default): one event-loop turn. A listener in a room with two speakers
    often gets both frames in the same turn (the speakers' frames arrive together); one
    `transport.write` of the two is one system call instead of two. One callback per
    window for the whole process, not per socket.

    A window above 0 (`VOICEROOM_VOICE_FLUSH_MS`) holds each socket's frames for up to
    that long: a listener's frames from different speakers, and a burst from one, share
    one write. On loopback TCP a write of one small frame costs a few microseconds of
    kernel time whatever it carries (docs/benchmarks.md, "The cost of one write"), so
    fewer writes is most of what is left to save; the price is up to the window of
    added latency for each frame.
    """

    __slots__ = ("loop", "pending", "window_s")

    def __init__(self, window_s: float | None = None) -> None:
        self.pending: list[WebSocketProtocol] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.window_s = window_s  # None: read VOICEROOM_VOICE_FLUSH_MS on first use

    def add(self, protocol: WebSocketProtocol) -> None:
        pending = self.pending
        if not pending or self.loop is not protocol.loop:
            if pending:  # left over by a loop that stopped (tests): never flushed there
                pending.clear()
            self.loop = loop = protocol.loop
            window = self.window_s
            if window is None:
                window = self.window_s = voice_flush_window_s()
            if window > 0:
                loop.call_later(window, self.flush)
            else:
                loop.call_soon(self.flush)
        pending.append(protocol)

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        for protocol in pending:
            protocol.flush_frames()


def voice_flush_window_s() -> float:
    """VOICEROOM_VOICE_FLUSH_MS in seconds (0 when Django is not configured: tests that
    drive the protocol bare)."""
    from django.conf import settings

    if not settings.configured:
        return 0.0
    return max(0.0, float(getattr(settings, "VOICEROOM_VOICE_FLUSH_MS", 0.0))) / 1000.0


_coalescer = _Coalescer()


class _Inbox:
    """What uvicorn's protocol needs of its asyncio.Queue (`put_nowait`, `get`, `empty`),
    without a Queue's four deques and its Event: about 3 KiB less per idle socket.

    One ASGI application reads a socket at a time; a second concurrent `get` is still
    served (both wait on one future), as the ASGI spec does not forbid it.
    """

    __slots__ = ("_items", "_loop", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._items: list[Any] = []
        self._loop = loop
        self._waiter: asyncio.Future | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def waiting(self) -> bool:
        """The application waits in `receive` and nothing is queued before what comes."""
        waiter = self._waiter
        return not self._items and waiter is not None and not waiter.done()

    async def get(self) -> Any:
        items = self._items
        while not items:
            waiter = self._waiter
            if waiter is None or waiter.done():
                waiter = self._waiter = self._loop.create_future()
            await waiter
        return items.pop(0)


class _Flag:
    """What uvicorn's protocol needs of its `writable` asyncio.Event, with no deque until
    something waits. Each waiter has its own future, as with an Event, so a cancelled
    send does not cancel the others."""

    __slots__ = ("_loop", "_set", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._set = True
        self._waiters: list[asyncio.Future] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(True)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = self._loop.create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            return await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol, with a fast path for relayed voice.

    Everything the application does still goes through ASGI `send` and `receive`,
    unchanged. The relay's voice frames do not: a frame is the same bytes for every
    recipient (servers do not mask; compression is off), so the relay encodes it once
    (realtime/servers/wire.py) and hands it to `write_frame` of each recipient, which
    queues it; at the end of the loop turn each socket's queued frames leave in one
    `transport.write`. No coroutine, no ASGI message, no framing per recipient.

    Flow control is reported to the relay's endpoint as it happens: the transport calls
    `pause_writing` when its buffer passes the high-water mark (the endpoint is then
    backed up: its voice is dropped and counted, and the stall watch runs) and
    `resume_writing` when it drains. A socket that negotiated per-message deflate gets no
    fast path (its frames differ per socket) and keeps the ASGI path.
    """

    endpoint: Endpoint | None = None
    _frames: list[bytes] | None = None
    # Inbound: who takes binary messages as they are read (`take_voice`); whether this
    # protocol cuts the stream into frames itself (None: not decided yet); the start of
    # a frame not complete yet.
    voice_sink: Callable[[bytes], bool] | None = None
    _framing: bool | None = None
    _partial: bytes = b""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Lighter stand-ins for the receive queue and the flow-control event (same
        # methods, the only ones uvicorn calls), for the memory of idle sockets.
        self.queue = _Inbox(self.loop)  # type: ignore[assignment]
        self.writable = _Flag(self.loop)  # type: ignore[assignment]

    def relay_attach(self, endpoint: Endpoint) -> Callable[[bytes], None] | None:
        """The relay registered this socket: report flow control to `endpoint`, and give
        it the fast path (None: use ASGI `send`)."""
        self.endpoint = endpoint
        if not self.writable.is_set():
            endpoint.flow_paused()
        # uvicorn keeps the handshake's request and response for good; both were used
        # up when the socket was accepted (the scope holds the headers).
        if self.handshake_complete:
            # (uvicorn types both as always set; nothing reads them after the handshake)
            self.request = self.response = None  # type: ignore[assignment]
        if self.conn.extensions:
            return None
        return self.write_frame

    # -- inbound -------------------------------------------------------------------------

    def take_voice(self, handler: Callable[[bytes], bool] | None) -> bool:
        """Hand binary messages to `handler` as they are read (sockets.ServerSocket)."""
        if self.conn.extensions:  # compressed frames: websockets' parser only
            return False
        self.voice_sink = handler
        return True

    def data_received(self, data: bytes) -> None:
        """uvicorn's, with voice taken on the way: see `_frames_in`."""
        framing = self._framing
        if framing:
            self._frames_in(data)
            return
        super().data_received(data)
        if framing is None and self.handshake_initiated:
            # uvicorn's HTTP protocol hands the upgrade request over alone, rebuilt from
            # its headers, in one call: websockets' parser has taken all of it and waits
            # at the start of the first frame. From here on this protocol finds the frame
            # boundaries itself and gives the parser whole frames only.
            self._framing = data.endswith(b"\r\n\r\n") and not self.conn.reader.buffer

    def _frames_in(self, data: bytes) -> None:
        """Cut what was read into frames. A complete, unfragmented, masked binary frame
        goes to `voice_sink` while the application waits with nothing queued (so it
        cannot overtake an earlier message); every other frame, and one the sink
        declines, goes whole to websockets' parser and the ASGI queue, as before.

        What the sink skips: websockets' frame parser (a generator per frame), the ASGI
        message, the receive queue, the application task's wake-up and uvicorn's pause
        and resume of reading around each message. Any frame the fast path does not
        know (fragmented, over the size limit) ends it for the connection: the parser
        has the rest, and closes with the right code where it must.
        """
        if self._partial:
            data = self._partial + data
            self._partial = b""
        size = len(data)
        pos = start = 0  # next frame; first byte not yet taken or handed to the parser
        sink = self.voice_sink
        limit = self.conn.max_message_size
        inbox: _Inbox = self.queue  # type: ignore[assignment]
        view = memoryview(data)
        while size - pos >= 2:
            b0 = data[pos]
            b1 = data[pos + 1]
            length = b1 & 0x7F
            head = pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(data[head : head + 2], "big")
                head += 2
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(data[head : head + 8], "big")
                head += 8
            if not b0 & 0x80 or (limit is not None and length > limit):
                self._framing = False  # a fragment, or too big: the parser has the rest
                break
            masked = b1 & 0x80
            if masked:
                head += 4
            end = head + length
            if end > size:
                break
            if b0 == 0x82 and masked and sink is not None:
                if start < pos:
                    super().data_received(data[start:pos])  # earlier frames go first
                    start = pos
                if not self.close_sent and self.conn.state is State.OPEN and inbox.waiting():
                    payload = apply_mask(view[head:end], data[head - 4 : head])
                    try:
                        taken = sink(payload)
                    except Exception:
                        logger.exception("the voice handler failed; the frame is dropped")
                        taken = True
                    if taken:
                        start = end
            pos = end
        if self._framing is False:
            rest = data[start:]
        else:
            rest = data[start:pos]
            if pos < size:
                self._partial = data[pos:]
        if rest:
            super().data_received(rest)

    # -- outbound ------------------------------------------------------------------------

    def write_frame(self, frame: bytes) -> None:
        """Queue one encoded server frame; it leaves at the end of this loop turn (or of
        the flush window, `VOICEROOM_VOICE_FLUSH_MS`)."""
        frames = self._frames
        if frames is not None:
            frames.append(frame)
        elif not self.close_sent:
            self._frames = [frame]
            _coalescer.add(self)

    def flush_frames(self) -> None:
        frames = self._frames
        if frames is None:
            return
        self._frames = None
        transport = self.transport
        if self.close_sent or transport.is_closing():
            return
        transport.write(frames[0] if len(frames) == 1 else b"".join(frames))

    def buffered(self) -> int:
        """Bytes accepted but not yet handed to the kernel."""
        frames = self._frames
        queued = sum(map(len, frames)) if frames else 0
        return queued + self.transport.get_write_buffer_size()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.endpoint is not None:
            self.endpoint.flow_paused()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.endpoint is not None:
            self.endpoint.flow_resumed()

    async def send(self, message: Any) -> None:
        # Relayed frames queued this turn go first, so nothing overtakes them.
        if self._frames is not None:
            self.flush_frames()
        await super().send(message)

    def shutdown(self) -> None:
        self.flush_frames()
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self._frames = None
        super().connection_lost(exc)
