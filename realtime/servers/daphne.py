"""daphne's WebSocket side with voiceroom's limit on incoming messages; and its drain on
shutdown (`drain_on_shutdown`, below).

daphne passes autobahn `maxMessagePayloadSize` (`--websocket-max-message-size`, 1 MiB
by default), which bounds the messages a socket receives AND those it sends, so it
cannot be set just above the largest client frame (a `welcome` for a full room is far
larger). And autobahn fails a connection by dropping TCP (`failByDrop`), so a client
over a limit sees 1006, not why.

Here, for every daphne server in the process:

- a message the client sends is closed with 1009 (message too big) as soon as the
  header of the frame that takes it over `realtime.limits.MAX_MESSAGE_BYTES` arrives,
  before its payload is read: a single large frame, or many small fragments;
- autobahn's failures close with their code (1009, 1007, 1002) instead of dropping TCP;
- what the server sends keeps daphne's own limit.

`install()` runs when voiceroom.asgi is imported, which every way of starting daphne
does before it builds its WebSocket factory: `daphne ... voiceroom.asgi:application`,
`manage.py runserver` (daphne's), `make run`. It is the only code that knows daphne's
insides (Server.run builds `daphne.server.WebSocketFactory`); under uvicorn it changes
nothing that runs. tests/rooms/test_live_limits.py checks it on a real daphne node.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable

import daphne.access
import daphne.server
from daphne.ws_protocol import WebSocketFactory as _DaphneFactory
from daphne.ws_protocol import WebSocketProtocol as _DaphneProtocol

from realtime.limits import MAX_MESSAGE_BYTES
from rooms.contract import CloseCode

logger = logging.getLogger(__name__)


class WebSocketProtocol(_DaphneProtocol):
    def onMessageFrameBegin(self, length: int) -> None:
        # autobahn adds `length` to the message's total before any payload byte is read.
        super().onMessageFrameBegin(length)
        if not self.failedByMe and self.message_data_total_length > MAX_MESSAGE_BYTES:
            self.wasMaxMessagePayloadSizeExceeded = True
            self._max_message_size_exceeded(
                self.message_data_total_length,
                MAX_MESSAGE_BYTES,
                f"message over {MAX_MESSAGE_BYTES} bytes",
            )


class WebSocketFactory(_DaphneFactory):
    protocol = WebSocketProtocol

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Close with the failure's code (the client reads 1009) rather than drop TCP.
        self.setProtocolOptions(failByDrop=False)


def install() -> None:
    daphne.server.WebSocketFactory = WebSocketFactory


# -- the access log -----------------------------------------------------------------------


def redact_access_log(redact: Callable[[str], str]) -> None:
    """daphne writes its access log straight to a stream (daphne.access.AccessLogGenerator),
    past logging and so past voiceroom.logfilters' filter: pass each request line (which
    holds the query string: `?ticket=...`) through `redact` there. Idempotent."""
    generator = daphne.access.AccessLogGenerator
    original = generator.write_entry
    if getattr(original, "redacts_credentials", False):
        return

    def write_entry(self, host, date, request, *args, **kwargs):
        return original(self, host, date, redact(request), *args, **kwargs)

    write_entry.redacts_credentials = True  # type: ignore[attr-defined]
    generator.write_entry = write_entry


# -- drain on shutdown -------------------------------------------------------------------

_drain_installed = False
CLOSE_DRAINING = int(CloseCode.DRAINING)  # daphne's stand-in for 1012, see below


def drain_on_shutdown() -> None:
    """uvicorn closes sockets with 1012 on SIGTERM by itself; daphne drops them (1006).

    Under daphne (whose Twisted reactor is already installed and running), a "before
    shutdown" trigger, Twisted's public API for this, closes them first. Autobahn lets an
    application close only with 1000 or 3000-4999, so daphne's drain code is 4013
    ("node shutting down: resume elsewhere now"), which clients treat like 1012.
    Installed once per process by the runtime's start; a no-op under any other server.
    """
    global _drain_installed
    if _drain_installed or "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer, reactor

    def before_shutdown():
        from realtime import runtime

        relay = runtime.current().relay
        logger.info(
            "shutting down: closing %d sockets with %d",
            sum(map(len, relay.rooms.values())),
            CLOSE_DRAINING,
        )
        return defer.Deferred.fromFuture(asyncio.ensure_future(_drain_and_settle(relay)))

    # twisted's interfaces declare their methods without `self` (zope.interface style), so
    # without the mypy-zope plugin mypy shifts every argument by one.
    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)  # type: ignore[arg-type]
    _drain_installed = True


async def _drain_and_settle(relay, limit_s: float = 5.0) -> None:
    """Close every socket, then wait until the sync work their closing started is done.

    A closed socket's disconnect handler runs in asgiref's thread-sensitive executor,
    and that code hops back into the event loop to broadcast (`async_to_sync`). Once
    the reactor has stopped, a thread still waiting for the loop never finishes, and the
    process never exits (seen: a daphne node stuck for good after SIGTERM). So the
    reactor is held until a no-op queued behind that work runs at once.
    """
    from asgiref.sync import sync_to_async

    await relay.drain(CLOSE_DRAINING)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    await asyncio.sleep(0.1)  # disconnect handlers reach their sync step
    while loop.time() < deadline:
        started = loop.time()
        await sync_to_async(_nothing, thread_sensitive=True)()
        if loop.time() - started < 0.02:
            break
        await asyncio.sleep(0.05)
    from realtime import runtime

    try:  # the sockets are gone: end the background work (bus, housekeeping) cleanly
        await asyncio.wait_for(runtime.current().stop(), 1.0)
    except Exception:
        logger.warning("stopping the realtime runtime failed", exc_info=True)


def _nothing() -> None:
    pass
