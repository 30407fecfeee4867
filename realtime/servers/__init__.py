"""Adapters to the ASGI servers (uvicorn, daphne): the only code that knows a server's internals.

The relay and the room consumer use one small interface, re-exported here:
`server_socket(send, endpoint)` picks the adapter behind an ASGI `send` and returns a
`ServerSocket` (`stuck()`: the connection cannot take data now; `abort()`: drop it
without the closing handshake; `write`: the fast path for one frame encoded once for all
recipients by `wire.binary_frame`, or None), or None under a server it does not know
(Channels' test communicator). Everything else that reads a server's internals lives beside it:
realtime/servers/sockets.py (the sockets and daphne's flow-control producer),
daphne.py (its message size limit, the drain before the reactor stops), uvicorn.py
(the request-header deadline; the WebSocket protocol with the fast path), wire.py (the
frame encoding).
"""

from realtime.servers.sockets import ServerSocket, server_socket

__all__ = ["ServerSocket", "server_socket"]
