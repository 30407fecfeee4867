"""A real webhook receiver for tests: an HTTP server on 127.0.0.1 in a thread."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Records every whole POST (raw body, signature header); one cut off before its
    body ends is not recorded. `status` is what it answers;
    `delay_s` how long it takes. `stop()` closes the port: the receiver is then down."""

    def __init__(self, port: int = 0, *, status: int = 200, delay_s: float = 0.0) -> None:
        self.port = port
        self.status = status
        self.delay_s = delay_s
        self.received: list[tuple[bytes, str]] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender died between the headers and the body (http.client
                    # sends them apart): a cut-off request, as a real server would
                    # drop it, is not a delivery.
                    self.close_connection = True
                    return
                time.sleep(receiver.delay_s)
                status = receiver.status
                if 200 <= status < 300:
                    with receiver.lock:
                        receiver.received.append(
                            (body, self.headers.get("X-Voiceroom-Signature", ""))
                        )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # not 5: parallel POSTs would wait for SYN retries
            daemon_threads = True

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def bodies(self) -> list[bytes]:
        with self.lock:
            return [body for body, _ in self.received]

    def check_signatures(self, secret: str) -> None:
        with self.lock:
            received = list(self.received)
        for body, signature in received:
            expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(signature, expected), body

    def first_copies(self) -> list[dict]:
        """The events received, each once (the first copy), in the order received."""
        seen: set[str] = set()
        out = []
        for body in self.bodies():
            event = json.loads(body)
            if event["id"] not in seen:
                seen.add(event["id"])
                out.append(event)
        return out


def assert_per_room_order(events: list[dict], stored_ids_by_room: dict[int, list[str]]) -> None:
    """Each room's events arrived in the order they were stored."""
    by_room: dict[int, list[str]] = {}
    for event in events:
        by_room.setdefault(event["room_id"], []).append(event["id"])
    for room_id, ids in stored_ids_by_room.items():
        assert by_room.get(room_id, []) == ids, room_id
