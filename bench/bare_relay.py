"""The floor every voiceroom figure is compared with: a bare `websockets` relay.

No Django, no Channels, no Redis: path `/room/{name}?uid=N`; a binary message from a
client gets the contract's 9-byte header (kind 1, sender id from `?uid=`, a per-sender
sequence) and is pushed with `websockets.broadcast()` to every other socket of the room.
Text messages are ignored. Compression is off.

    python -m bench.bare_relay --host 127.0.0.1 --port 8765
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import struct
import sys
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, broadcast, serve

HEADER = struct.Struct("!BII")
KIND_ROOM = 1

rooms: dict[str, set[ServerConnection]] = {}
_anonymous_ids = itertools.count(1_000_000)


def _parse_path(path: str) -> tuple[str | None, int]:
    parts = urlsplit(path)
    if not parts.path.startswith("/room/") or len(parts.path) <= len("/room/"):
        return None, 0
    room = parts.path[len("/room/") :].strip("/")
    try:
        uid = int(parse_qs(parts.query).get("uid", [""])[0])
    except ValueError:
        uid = next(_anonymous_ids)
    return room, uid & 0xFFFFFFFF


async def handler(ws: ServerConnection) -> None:
    room, uid = _parse_path(ws.request.path)
    if room is None:
        await ws.close(4004, "unknown room path, use /room/{n}?uid=N")
        return
    members = rooms.setdefault(room, set())
    members.add(ws)
    seq = 0
    pack = HEADER.pack
    try:
        async for message in ws:
            if isinstance(message, str):
                continue
            seq = (seq + 1) & 0xFFFFFFFF
            others = [m for m in members if m is not ws]
            if others:
                broadcast(others, pack(KIND_ROOM, uid, seq) + message)
    finally:
        members.discard(ws)
        if not members:
            rooms.pop(room, None)


async def amain(host: str, port: int, ready_fd_print: bool = True) -> None:
    stop = asyncio.get_running_loop().create_future()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with serve(
        handler,
        host,
        port,
        compression=None,
        max_size=65536,
        max_queue=64,
        ping_interval=20,
        ping_timeout=20,
    ):
        if ready_fd_print:
            print(f"bare relay listening on ws://{host}:{port}/room/{{n}}", flush=True)
        await stop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_relay", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--no-uvloop", action="store_true", help="use the stock asyncio loop instead of uvloop"
    )
    args = parser.parse_args(argv)
    if args.no_uvloop:
        asyncio.run(amain(args.host, args.port))
    else:
        import uvloop

        uvloop.run(amain(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
