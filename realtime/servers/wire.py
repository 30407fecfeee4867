"""One server-to-client WebSocket binary frame, encoded once for every recipient.

RFC 6455 section 5.2: a server never masks its frames, so a frame is the same bytes for
every socket that does not compress (no per-message deflate: every documented command
turns it off). FIN and opcode 2 (binary), the payload length in 7, 16 or 64 bits, then
the payload unchanged. This is what websockets' `Frame.serialize(mask=False)` writes for
`send_binary`, the ASGI path of uvicorn's websockets-sansio protocol;
tests/realtime/test_fast_path.py checks the two are byte-identical.
"""

from __future__ import annotations

import struct

_FIN_BINARY = 0x82
_LEN16 = struct.Struct("!BBH")
_LEN64 = struct.Struct("!BBQ")
_SHORT = [bytes((_FIN_BINARY, n)) for n in range(126)]


def binary_frame(data: bytes) -> bytes:
    """The whole frame (header and payload) that carries `data` to a client."""
    size = len(data)
    if size < 126:
        return _SHORT[size] + data
    if size < 65536:
        return _LEN16.pack(_FIN_BINARY, 126, size) + data
    return _LEN64.pack(_FIN_BINARY, 127, size) + data
