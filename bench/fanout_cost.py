"""What the relay's own Python costs per delivery, without the kernel: the most a native
fan-out could save (docs/benchmarks.md, "The kernel's share").

It runs the relay's real fan-out (`realtime.relay._fan_out`), our uvicorn protocol's
`write_frame` and `flush_frames` and the coalescer's flush, for one frame to --sockets
recipients, --frames times, on uvloop, against transports whose `write` does nothing:
everything a delivery costs in the interpreter, and none of what the kernel does with
the write. It prints the CPU time per delivery.

    python -m bench.fanout_cost
    python -m bench.fanout_cost --sockets 19 --frames 50000
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import time


class _Transport:
    """What `flush_frames` calls on an asyncio transport, doing nothing."""

    __slots__ = ()

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


@functools.cache
def _outbound_class() -> type:
    """A class with our uvicorn protocol's outbound fast path (its own methods, not
    copies), without a connection behind it. One class for every socket, as in the
    server (a class per socket would defeat the interpreter's attribute caches)."""
    from realtime.servers.uvicorn import WebSocketProtocol

    class Outbound:
        close_sent = False
        _frames = None
        write_frame = WebSocketProtocol.write_frame
        flush_frames = WebSocketProtocol.flush_frames

        def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
            self.loop = loop
            self.transport = _Transport()

    return Outbound


async def measure(sockets: int, frames: int, payload_bytes: int) -> dict[str, float]:
    from realtime.relay import Endpoint, _fan_out, stats
    from realtime.servers import uvicorn

    loop = asyncio.get_running_loop()
    coalescer = uvicorn._Coalescer(window_s=0.0)
    saved, uvicorn._coalescer = uvicorn._coalescer, coalescer
    try:
        room: dict[int, Endpoint] = {}
        for user_id in range(sockets + 1):  # the speaker and its listeners
            ep = object.__new__(Endpoint)  # no server behind it: set what _fan_out reads
            ep.busy = False
            ep.dropped = 0
            ep.write = _outbound_class()(loop).write_frame
            room[user_id] = ep
        speaker = room[0]
        data = b"\x01" + bytes(8) + bytes(payload_bytes)  # header + payload
        for _ in range(min(frames, 1000)):  # warm up
            _fan_out(room.values(), speaker, data)
            coalescer.flush()
        direct_before = stats.deliveries_direct
        start = time.process_time()
        for _ in range(frames):
            _fan_out(room.values(), speaker, data)
            coalescer.flush()
        cpu = time.process_time() - start
        direct = stats.deliveries_direct - direct_before
        unflushed = sum(ep.write.__self__._frames is not None for ep in room.values())
    finally:
        uvicorn._coalescer = saved
    deliveries = frames * sockets
    return {
        "deliveries": deliveries,
        "direct": direct,  # deliveries that took the fast path (all of them)
        "unflushed": unflushed,  # sockets left with frames queued (none)
        "cpu_s": cpu,
        "us_per_delivery": cpu / deliveries * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sockets", type=int, default=19, help="recipients (a 20-person room)")
    p.add_argument("--frames", type=int, default=20000, help="frames relayed")
    p.add_argument("--payload-bytes", type=int, default=120)
    args = p.parse_args(argv)
    if args.sockets < 1 or args.frames < 1:
        p.error("--sockets and --frames must be at least 1")
    import uvloop

    res = uvloop.run(measure(args.sockets, args.frames, args.payload_bytes))
    print(
        f"{res['deliveries']} deliveries ({args.frames} frames to {args.sockets} sockets):"
        f" {res['us_per_delivery']:.3f} us of CPU per delivery in the relay's Python"
        " (transport writes do nothing)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
