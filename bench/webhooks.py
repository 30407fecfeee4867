"""Webhook outbox throughput: how fast events are stored and delivered.

    DATABASE_URL=mysql://root:@127.0.0.1:3306/voiceroom python -m bench.webhooks \
        --events 2000 --rooms 50

Against a migrated database (its own rows only: room ids from 10**12 up, deleted at the
end). A receiver answering 204 runs in a child process on 127.0.0.1. Measured:
1. store: `record_event` N times, one transaction each (what a service adds per event);
2. deliver: one delivery loop (webhooks.delivery.run, as a node runs it) sends the N
   events, --rooms rooms interleaved, until none is pending; events per second. A room's
   events go one at a time (per-room order), so one room alone is measured too.
Prints a markdown table. See docs/benchmarks.md ("Webhooks").
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BASE_ROOM = 10**12


def _serve(port: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        # The default listen backlog (5) drops the SYNs of a burst of parallel POSTs,
        # which then wait a second for the retransmission: not what is measured here.
        request_queue_size = 128
        daemon_threads = True

    Server(("127.0.0.1", port), Handler).serve_forever()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rooms", type=int, default=50)
    args = parser.parse_args()

    port = _free_port()
    receiver = multiprocessing.Process(target=_serve, args=(port,), daemon=True)
    receiver.start()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceroom.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-" + "k" * 40)
    os.environ["VOICEROOM_WEBHOOK_URL"] = f"http://127.0.0.1:{port}/hook"
    os.environ["VOICEROOM_WEBHOOK_SECRET"] = "bench-secret"
    os.environ.setdefault("DJANGO_LOG_LEVEL", "ERROR")
    import django

    django.setup()
    from webhooks import delivery
    from webhooks.models import Event, Stream
    from webhooks.services import record_event

    rows = []
    try:
        for label, rooms in ((f"{args.rooms} rooms", args.rooms), ("1 room", 1)):
            started = time.perf_counter()
            for i in range(args.events):
                record_event("room.opened", BASE_ROOM + i % rooms, {"i": i})
            stored_s = time.perf_counter() - started

            async def deliver() -> float:
                stop = asyncio.Event()
                task = asyncio.create_task(delivery.run("bench", stop=stop))
                t0 = time.perf_counter()
                while await asyncio.to_thread(  # noqa: ASYNC110 (polls the database)
                    Event.objects.filter(room_id__gte=BASE_ROOM, status="pending").exists
                ):
                    await asyncio.sleep(0.05)
                elapsed = time.perf_counter() - t0
                stop.set()
                delivery.wake()
                await task
                return elapsed

            delivered_s = asyncio.run(deliver())
            rows.append((label, args.events, args.events / stored_s, args.events / delivered_s))
            Event.objects.filter(room_id__gte=BASE_ROOM).delete()
    finally:
        Event.objects.filter(room_id__gte=BASE_ROOM).delete()
        Stream.objects.filter(room_id__gte=BASE_ROOM).delete()
        receiver.terminate()
    print("| events spread over | events | stored/s | delivered/s |")
    print("| --- | --- | --- | --- |")
    for label, n, stored, delivered in rows:
        print(f"| {label} | {n} | {stored:.0f} | {delivered:.0f} |")


if __name__ == "__main__":
    main()
