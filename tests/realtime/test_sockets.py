"""realtime.servers.sockets: finding the server's connection behind an ASGI `send`."""

from __future__ import annotations

import asyncio
import functools
import socket
import struct

from realtime.relay import Endpoint
from realtime.servers.sockets import DaphneSocket, UvicornSocket


class FakeSock:
    def __init__(self) -> None:
        self.options = {}

    def setsockopt(self, level, name, value) -> None:
        self.options[(level, name)] = value


class FakeAsyncioTransport:
    def __init__(self) -> None:
        self.closing = False
        self.aborted = False
        self.sock = FakeSock()

    def get_extra_info(self, name):
        return self.sock if name == "socket" else None

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.aborted = True


class FakeUvicornProtocol:
    def __init__(self) -> None:
        self.transport = FakeAsyncioTransport()
        self.writable = asyncio.Event()
        self.writable.set()

    async def send(self, message) -> None:
        await self.writable.wait()


class FakeTwistedTransport:
    def __init__(self) -> None:
        self.producer = None
        self.disconnecting = False
        self.aborted = False

    def registerProducer(self, producer, streaming) -> None:
        assert streaming and self.producer is None  # Twisted refuses a second one
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def abortConnection(self) -> None:
        self.aborted = True


class FakeDaphneProtocol:
    def __init__(self) -> None:
        self.transport = FakeTwistedTransport()


async def _handle_reply(protocol, message) -> None:
    pass


async def test_uvicorn_flow_control_and_abort_are_found_through_the_bound_send():
    protocol = FakeUvicornProtocol()
    ep = Endpoint(room_id=1, user_id=1, send=protocol.send)
    assert isinstance(ep.server, UvicornSocket)
    assert not ep.stuck()
    protocol.writable.clear()  # uvicorn's pause_writing()
    assert ep.stuck()
    protocol.writable.set()
    protocol.transport.closing = True  # closing, waiting for a buffer to drain
    assert ep.stuck()
    assert ep.server.abort() and protocol.transport.aborted
    # With a TCP reset, so the kernel does not keep the connection and its backlog.
    linger = protocol.transport.sock.options[(socket.SOL_SOCKET, socket.SO_LINGER)]
    assert struct.unpack("ii", linger) == (1, 0)


async def test_daphne_gets_a_producer_whose_pause_marks_the_endpoint_backed_up():
    protocol = FakeDaphneProtocol()
    protocol.transport.producer = object()  # the HTTP channel that served the upgrade
    ep = Endpoint(room_id=1, user_id=1, send=functools.partial(_handle_reply, protocol))
    assert isinstance(ep.server, DaphneSocket)
    producer = protocol.transport.producer
    assert producer is not None
    producer.pauseProducing()  # Twisted: the write buffer passed its high-water mark
    assert ep.busy and ep.stalled_since and ep.stuck()
    producer.resumeProducing()
    assert not ep.busy and ep.stalled_since == 0.0 and not ep.stuck()
    protocol.transport.disconnecting = True
    assert ep.stuck()
    assert ep.server.abort() and protocol.transport.aborted


async def test_an_unknown_server_gets_none():
    async def send(message) -> None:
        pass

    assert Endpoint(room_id=1, user_id=1, send=send).server is None


class FakeAutobahnProtocol(FakeDaphneProtocol):
    STATE_OPEN = 3

    def __init__(self, extensions=()) -> None:
        super().__init__()
        self.state = self.STATE_OPEN
        self.send_queue: list = []
        self.websocket_extensions_in_use = list(extensions)
        self.written: list[bytes] = []
        self.transport.write = self.written.append

    def sendData(self, data: bytes) -> None:
        self.send_queue.append(data)


async def test_daphne_fast_path_writes_to_the_transport_only_while_open_and_in_order():
    protocol = FakeAutobahnProtocol()
    ep = Endpoint(room_id=1, user_id=1, send=functools.partial(_handle_reply, protocol))
    assert ep.write is not None
    ep.write(b"frame-1")
    assert protocol.written == [b"frame-1"]
    protocol.send_queue.append(b"queued by autobahn")
    ep.write(b"frame-2")  # behind autobahn's own queue, not ahead of it
    assert protocol.written == [b"frame-1"] and protocol.send_queue[-1] == b"frame-2"
    protocol.send_queue.clear()
    protocol.state = 4  # closing
    ep.write(b"frame-3")
    assert protocol.written == [b"frame-1"] and not protocol.send_queue


async def test_daphne_with_an_extension_in_use_keeps_the_asgi_path():
    protocol = FakeAutobahnProtocol(extensions=["permessage-deflate"])
    ep = Endpoint(room_id=1, user_id=1, send=functools.partial(_handle_reply, protocol))
    assert isinstance(ep.server, DaphneSocket) and ep.write is None
