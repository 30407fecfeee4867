"""daphne's WebSocket side with voiceroom's limit on incoming messages.

daphne passes autobahn `maxMessagePayloadSize` (`--websocket-max-message-size`, 1 MiB
by default), which bounds the messages a socket receives AND those it sends, so it
cannot be set just above the largest client frame (a `welcome` for a full room is far
larger). And autobahn fails a connection by dropping TCP (`failByDrop`), so a client
over a limit sees 1006, not why.

Here, for every daphne server in the process:

- a message the client sends is closed with 1009 (message too big) as soon as the
  header of the frame that takes it over `rooms.ws.frames.MAX_MESSAGE_BYTES` arrives,
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

import daphne.server
from daphne.ws_protocol import WebSocketFactory as _DaphneFactory
from daphne.ws_protocol import WebSocketProtocol as _DaphneProtocol

from rooms.ws.frames import MAX_MESSAGE_BYTES


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
