"""uvicorn's httptools HTTP protocol with a deadline for request headers.

uvicorn starts no timer when a connection opens: a client that connects and sends
nothing, or sends its headers a byte at a time (slowloris), holds a socket and its
memory for as long as it likes, before any credential is checked. This protocol closes
such a connection when a request's headers are not complete VOICEROOM_HANDSHAKE_TIMEOUT_S
after the connection opened (or after the request's first byte, for later requests on a
kept-alive connection; uvicorn's own keep-alive timeout covers the idle time between).

Run uvicorn with `--http realtime.servers.uvicorn:HttpToolsProtocol` (docker/Dockerfile does).

Importing this module also quiets one uvicorn log line a client can trigger at will: a
text frame that is not UTF-8 is answered correctly (close 1007) but logged as an ERROR
with a traceback, so any client could fill the logs. It becomes one INFO line.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _HttpToolsProtocol

_timeout_s: float | None = None

_CLIENT_UTF8 = "Invalid UTF-8 sequence received from client."


class _ClientErrorsAreNotServerErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == _CLIENT_UTF8:
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg = _CLIENT_UTF8 + " Closed with 1007."
            return logging.getLogger(record.name).isEnabledFor(logging.INFO)
        return True


logging.getLogger("uvicorn.error").addFilter(_ClientErrorsAreNotServerErrors())


def handshake_timeout_s() -> float:
    global _timeout_s
    if _timeout_s is None:
        from django.conf import settings

        _timeout_s = float(settings.VOICEROOM_HANDSHAKE_TIMEOUT_S)
    return _timeout_s


class HttpToolsProtocol(_HttpToolsProtocol):
    _header_deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        timeout = handshake_timeout_s()
        if self._header_deadline is None and timeout > 0:
            self._header_deadline = self.loop.call_later(timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.abort()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
