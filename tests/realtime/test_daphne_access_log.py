"""realtime.servers.daphne.redact_access_log: daphne's access log (a stream, past
logging) is passed through the redaction voiceroom.logfilters gives it."""

from __future__ import annotations

import io

from daphne.access import AccessLogGenerator

from realtime.servers import daphne
from voiceroom.logfilters import redact


def _request_line(self, host, date, request, status=None, length=None, ident=None, user=None):
    self.stream.write(f"{request} {status}\n")


def _log(path: str) -> str:
    stream = io.StringIO()
    AccessLogGenerator(stream)(
        "http",
        "complete",
        {"path": path, "status": 200, "method": "GET", "client": "127.0.0.1:1", "size": 1},
    )
    return stream.getvalue()


def test_the_request_line_goes_through_the_given_redaction_once(monkeypatch):
    # A writer that redacts nothing, as daphne's own (django.setup already wrapped that).
    monkeypatch.setattr(AccessLogGenerator, "write_entry", _request_line)
    assert _log("/ws/rooms/1/?ticket=abc") == "GET /ws/rooms/1/?ticket=abc 200\n"

    seen: list[str] = []

    def counting(text: str) -> str:
        seen.append(text)
        return redact(text)

    daphne.redact_access_log(counting)
    daphne.redact_access_log(counting)  # a second configure does not wrap it again
    assert _log("/ws/rooms/1/?ticket=abc&x=1") == "GET /ws/rooms/1/?ticket=[redacted]&x=1 200\n"
    assert seen == ["GET /ws/rooms/1/?ticket=abc&x=1"]
