"""Channels' consumer loop, leaner, for a socket whose binary frames are its hot path.

Channels' AsyncConsumer multiplexes the socket and the channel layer with asyncio.wait()
and a new task per message; for 1,000 voice frames a second that bookkeeping costs more
than relaying them. `LeanWebsocketConsumer` keeps Channels' API (dispatch to methods
named after the message type, connect/receive/disconnect, the channel layer) and changes
only how messages arrive: binary frames go straight to `voice()` with no handler lookup,
no `aclose_old_connections` thread hop, no task and no channel-layer message. Where the
server offers it, they do not even wait for this consumer's task: the server hands them
to `voice_now()` as it reads them (`voice_arrived`), while nothing is queued or running.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from redis.exceptions import RedisError

from rooms.contract import CloseCode
from rooms.ws.auth import refuse

logger = logging.getLogger(__name__)


class LeanWebsocketConsumer(AsyncWebsocketConsumer):
    """One task reads the socket, one the channel layer; see the module docstring."""

    async def voice(self, data: bytes) -> None:
        """A binary frame from the client (subclasses relay it)."""
        raise NotImplementedError

    def voice_now(self, data: bytes) -> bool:
        """A binary frame the server hands over as it reads it (uvicorn under our
        protocol: realtime/servers/sockets.py `take_voice`), while this consumer waits
        for its next message. Relay it and return True, or return False to have it come
        through `voice()` as usual."""
        return False

    def voice_arrived(self, data: bytes) -> bool:
        """The handler given to the server: never while a handler runs (a text frame or
        an event still being handled goes first, as `__call__` keeps it)."""
        if self._serial.locked():
            return False
        return self.voice_now(data)

    async def __call__(
        self, scope: Any, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Binary frames go to `voice()` as they arrive; every other message goes through
        `dispatch` one at a time (a lock keeps Channels' guarantee that handlers never
        overlap, and keeps a client's frames in the order sent)."""
        self.scope = scope
        layer = get_channel_layer(self.channel_layer_alias)
        if layer is None:
            raise RuntimeError("this socket needs a channel layer (settings.CHANNEL_LAYERS)")
        self.channel_layer = layer
        try:
            self.channel_name = await layer.new_channel()
        except (RedisError, OSError):
            # The Redis layer subscribes the new channel at once; without Redis that
            # fails before the handshake, which servers turn into an HTTP 500.
            logger.warning("socket refused: the channel layer is down", exc_info=True)
            await refuse(receive, send, CloseCode.UNAVAILABLE)
            return
        # The stubs type this as an ASGI receive; a channel layer's messages are plain dicts.
        self.channel_receive = functools.partial(layer.receive, self.channel_name)  # type: ignore[assignment]
        self.base_send = send
        self._serial = asyncio.Lock()
        layer_reader = asyncio.ensure_future(self._read_layer())
        try:
            while True:
                message: Any = await receive()
                if message["type"] == "websocket.receive":
                    data = message.get("bytes")
                    if data is not None:
                        if self._serial.locked():  # a handler is busy: keep the order
                            async with self._serial:
                                await self.voice(data)
                        else:
                            await self.voice(data)
                        continue
                async with self._serial:
                    await self.dispatch(message)
        except StopConsumer:
            pass
        finally:
            layer_reader.cancel()
            try:
                await layer_reader
            except (asyncio.CancelledError, Exception):
                pass

    async def _read_layer(self) -> None:
        while True:
            message: Any = await self.channel_receive()
            async with self._serial:
                try:
                    await self.dispatch(message)
                except StopConsumer:
                    return
                except OSError:
                    # The socket went away under an event (uvicorn's ClientDisconnected):
                    # nothing to tell it any more; its disconnect handler cleans up.
                    logger.debug("event for a closed socket dropped", exc_info=True)
                except Exception:
                    logger.exception(
                        "handling %s failed (room %s, user %s)",
                        message.get("type"),
                        getattr(self, "room_id", None),
                        getattr(self, "user_id", None),
                    )
