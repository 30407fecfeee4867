"""The test receiver itself: what it records is what a real server would have taken."""

from __future__ import annotations

import socket
import urllib.request

from tests.webhooks.receiver import Receiver


def test_a_request_cut_off_after_its_headers_is_not_recorded():
    receiver = Receiver().start()
    try:
        # What a sender killed between http.client's two sends leaves behind.
        with socket.create_connection(("127.0.0.1", receiver.port), timeout=5) as sock:
            sock.sendall(
                b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 20\r\n\r\n"
            )
            sock.shutdown(socket.SHUT_WR)
            # No answer, and the connection closed: the handler is done with it.
            assert sock.recv(1024) == b""
        assert receiver.bodies() == []
        body = b'{"id": "whole"}'
        request = urllib.request.Request(receiver.url, data=body, method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200  # recorded before it is answered
        assert receiver.bodies() == [body]
        assert [event["id"] for event in receiver.first_copies()] == ["whole"]
    finally:
        receiver.stop()
