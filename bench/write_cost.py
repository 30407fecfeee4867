"""What one small write to a loopback TCP socket costs the writing process: the floor
under every relay's CPU per delivery (docs/benchmarks.md, "The cost of one write").

A relay that sends each recipient its own write of a voice frame spends at least this
per delivery; below it, only fewer writes per delivery help (several frames in one
write). This process writes to --sockets connected sockets in turn, one frame (or
--frames frames joined) per write, pausing --pause-ms after each round as a relay waits
for the next frame, and reports its own CPU time (user and system) per write. A reader
process drains the sockets on --reader-core, as the load generator does in `bench.run`.

    python -m bench.write_cost
    python -m bench.write_cost --frames 1,2,4 --seconds 4
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import time


def reader(port: int, count: int, seconds: float) -> None:
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    poll = select.epoll()
    by_fd = {c.fileno(): c for c in conns}
    for c in conns:
        poll.register(c, select.EPOLLIN)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for fd, _ in poll.poll(0.2):
            if not by_fd[fd].recv(1 << 16):
                return


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sockets", type=int, default=19, help="recipients (a 20-person room)")
    p.add_argument("--frame-bytes", type=int, default=131, help="a 120 B frame + headers")
    p.add_argument("--frames", default="1,2", help="frames per write, a comma list")
    p.add_argument("--seconds", type=float, default=4.0, help="per measurement")
    p.add_argument("--pause-ms", type=float, default=0.5, help="pause after each round")
    p.add_argument("--writer-core", type=int, default=0)
    p.add_argument("--reader-core", type=int, default=1)
    args = p.parse_args(argv)
    counts = [int(n) for n in args.frames.split(",")]
    cores = os.cpu_count() or 1

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(args.sockets)
    port = server.getsockname()[1]
    total = args.seconds * len(counts) + 5
    pid = os.fork()
    if pid == 0:  # the reader
        try:
            os.sched_setaffinity(0, {args.reader_core % cores})
            reader(port, args.sockets, total)
        finally:
            os._exit(0)
    os.sched_setaffinity(0, {args.writer_core % cores})
    socks = [server.accept()[0] for _ in range(args.sockets)]
    for s in socks:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    frame = b"\x82" * args.frame_bytes
    print(f"{args.sockets} sockets, {args.frame_bytes} B frames, writer on core "
          f"{args.writer_core % cores}, reader on core {args.reader_core % cores}")  # fmt: skip
    print("| frames per write | writes | CPU us per write | user | system | us per frame |")
    print("|---|---|---|---|---|---|")
    pause = args.pause_ms / 1000
    try:
        for count in counts:
            data = frame * count
            t0, w0, writes = os.times(), time.monotonic(), 0
            while time.monotonic() - w0 < args.seconds:
                for s in socks:
                    s.send(data)
                writes += len(socks)
                if pause:
                    time.sleep(pause)
            t1 = os.times()
            user, system = t1.user - t0.user, t1.system - t0.system
            per = 1e6 / writes
            print(f"| {count} | {writes} | {(user + system) * per:.2f} | {user * per:.2f} | "
                  f"{system * per:.2f} | {(user + system) * per / count:.2f} |")  # fmt: skip
    finally:
        for s in socks:
            s.close()
        os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
