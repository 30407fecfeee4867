"""What the relay needs from the server under a socket that ASGI does not offer.

ASGI gives an application `send` and nothing else. To protect a room from a listener
that stopped reading, the relay must know when a connection cannot take data, and must
be able to drop a connection whose client will never read the close frame. Both servers
we run expose that through the object behind `send`:

- uvicorn: `send` is a bound method of its WebSocket protocol, which has the asyncio
  transport and the `writable` event it clears while flow control pauses writing.
  Under our own protocol class (`--ws realtime.servers.uvicorn:WebSocketProtocol`,
  every documented command) the socket also has a fast path, `write`: the relay hands
  it a frame encoded once for all recipients (realtime/servers/wire.py), and the
  protocol reports pause/resume to the endpoint as the transport calls them. Inbound,
  the protocol can hand voice to the application as it reads it (`take_voice`).
- daphne: `send` is `partial(server.handle_reply, protocol)`; the protocol has the
  Twisted transport. Twisted never makes daphne wait: it buffers without bound. So we
  register a streaming producer on the transport (in place of the HTTP channel that
  served the upgrade), which Twisted pauses when its buffer passes its high-water mark
  (64 KiB) and resumes when it drains: that marks the relay's endpoint busy, exactly as
  a suspended uvicorn send does. Voice takes a fast path here too (`_daphne_writer`).

Anything else (Channels' test communicator) gets no ServerSocket; the relay then knows
only what it sees itself (a send that suspends) and cannot abort.
"""

from __future__ import annotations

import functools
import logging
import socket
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from realtime.relay import Endpoint

logger = logging.getLogger(__name__)


class ServerSocket:
    """The server's side of one WebSocket connection.

    `write`: the fast path, or None. Called with one whole server frame from
    `realtime.servers.wire.binary_frame`, it sends it without the ASGI path. Only set
    where the frame is byte-identical to what ASGI `send` would write, and where the
    connection reports flow control to the endpoint itself (`Endpoint.flow_paused`).
    """

    __slots__ = ()
    write: Callable[[bytes], None] | None = None

    def stuck(self) -> bool:
        """The connection cannot take data now: paused by flow control, or closing and
        not yet gone (a close that waits for a buffer to drain that never will)."""
        raise NotImplementedError

    def abort(self) -> bool:
        """Drop the connection at once, without the closing handshake. True if done."""
        raise NotImplementedError

    def buffered(self) -> int:
        """Bytes the server holds for the connection, not yet given to the kernel."""
        return 0

    def take_voice(self, handler: Callable[[bytes], bool] | None) -> bool:
        """Hand the connection's binary messages to `handler` as they are read, while the
        application waits for its next message with nothing queued before them, instead
        of through ASGI `receive`. `handler` returns False for one it does not take now,
        which then arrives through `receive` as usual, in order. True: offered (uvicorn
        under our protocol); None stops it."""
        return False


_LINGER_RESET = struct.pack("ii", 1, 0)


def _reset_on_close(sock: Any) -> None:
    """Make closing the socket send a TCP reset. Otherwise the kernel keeps the
    connection, and the megabytes queued for a peer that does not read, for as long as
    TCP keeps probing a zero window, after the process has let go of it."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    except (OSError, AttributeError, ValueError):
        pass


class UvicornSocket(ServerSocket):
    __slots__ = ("protocol", "write")

    def __init__(self, protocol: Any, endpoint: Endpoint | None = None) -> None:
        self.protocol = protocol
        attach = getattr(protocol, "relay_attach", None)
        self.write = attach(endpoint) if attach is not None and endpoint is not None else None

    def stuck(self) -> bool:
        protocol = self.protocol
        return not protocol.writable.is_set() or protocol.transport.is_closing()

    def abort(self) -> bool:
        transport = self.protocol.transport
        _reset_on_close(transport.get_extra_info("socket"))
        transport.abort()
        return True

    def buffered(self) -> int:
        buffered = getattr(self.protocol, "buffered", None)
        if buffered is not None:
            return buffered()
        return self.protocol.transport.get_write_buffer_size()

    def take_voice(self, handler: Callable[[bytes], bool] | None) -> bool:
        take = getattr(self.protocol, "take_voice", None)
        return bool(take(handler)) if take is not None else False


class DaphneSocket(ServerSocket):
    __slots__ = ("transport", "write")

    def __init__(self, transport: Any, protocol: Any = None) -> None:
        self.transport = transport
        self.write = _daphne_writer(protocol, transport) if protocol is not None else None

    def stuck(self) -> bool:
        # `disconnecting`: loseConnection() was called and Twisted waits for the buffer.
        return bool(getattr(self.transport, "disconnecting", False))

    def abort(self) -> bool:
        handle = getattr(self.transport, "getHandle", None)
        _reset_on_close(handle() if handle is not None else None)
        self.transport.abortConnection()
        return True


def _daphne_writer(protocol: Any, transport: Any) -> Callable[[bytes], None] | None:
    """daphne's fast path: the encoded frame straight to the Twisted transport.

    What autobahn's `sendMessage` would write for an uncompressed, unfragmented message
    (the same bytes: tests/rooms/test_live_fast_path.py), without its per-send work
    (framing, traffic statistics, a debug line whose arguments are formatted even with
    logging off) and without daphne's reply coroutine. Twisted buffers the write and
    sends each connection's buffer once per reactor turn; its producer (below) reports
    flow control. Only while the connection is open; never with an extension
    (per-message deflate) in use.
    """
    if getattr(protocol, "websocket_extensions_in_use", None) or not hasattr(protocol, "state"):
        return None
    is_open = protocol.STATE_OPEN

    def write(frame: bytes) -> None:
        if protocol.state == is_open:
            if protocol.send_queue:  # autobahn's own queue (never used by daphne): keep order
                protocol.sendData(frame)
            else:
                transport.write(frame)

    return write


class _Producer:
    """A Twisted IPushProducer that only reports flow control to the relay's endpoint."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def pauseProducing(self) -> None:
        self.endpoint.flow_paused()

    def resumeProducing(self) -> None:
        self.endpoint.flow_resumed()

    def stopProducing(self) -> None:
        pass


def _daphne(send: Any, endpoint: Endpoint) -> ServerSocket | None:
    protocol = send.args[0] if send.args else None
    transport = getattr(protocol, "transport", None)
    if transport is None or not hasattr(transport, "abortConnection"):
        return None
    from twisted.internet.interfaces import IPushProducer
    from zope.interface import directlyProvides

    producer = _Producer(endpoint)
    directlyProvides(producer, IPushProducer)
    try:
        # Twisted's HTTP channel registered itself when the connection opened and stays
        # registered after daphne hands the connection to its WebSocket protocol; it has
        # nothing left to produce, so the relay's producer takes its place.
        if getattr(transport, "producer", None) is not None:
            transport.unregisterProducer()
        transport.registerProducer(producer, True)
    except Exception:  # no flow signal then; the socket still works
        logger.warning("cannot watch a daphne socket's write buffer", exc_info=True)
    return DaphneSocket(transport, protocol)


def server_socket(send: Any, endpoint: Endpoint) -> ServerSocket | None:
    """The ServerSocket behind an ASGI `send`, or None if the server is not one we know."""
    protocol = getattr(send, "__self__", None)
    if protocol is not None:
        transport = getattr(protocol, "transport", None)
        if hasattr(protocol, "writable") and hasattr(transport, "abort"):
            return UvicornSocket(protocol, endpoint)
        return None
    if isinstance(send, functools.partial):
        return _daphne(send, endpoint)
    return None
