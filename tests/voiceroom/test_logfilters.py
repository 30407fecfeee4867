"""The credential filter: what it redacts, and that the servers' log lines survive it."""

from __future__ import annotations

import io
import logging

import pytest

from voiceroom import logfilters
from voiceroom.logfilters import RedactCredentials, redact


@pytest.mark.parametrize(
    "line,expected",
    [
        (
            'GET /ws/rooms/1/?ticket=eyJy%3A1xZ:sig&x=1&resume=tok HTTP/1.1" 404',
            'GET /ws/rooms/1/?ticket=[redacted]&x=1&resume=[redacted] HTTP/1.1" 404',
        ),
        ("/ws/rooms/1/?resume=abc", "/ws/rooms/1/?resume=[redacted]"),
        ("'query_string': b'ticket=abc'", "'query_string': b'ticket=[redacted]'"),
        ("/a?Ticket=abc", "/a?Ticket=[redacted]"),
        ("/a?tick%65t=abc", "/a?tick%65t=[redacted]"),  # the server decodes the name
        ("/a?token=abc", "/a?token=[redacted]"),
        ("< authorization: Token 0123abc", "< authorization: [redacted]"),
        ("< cookie: sessionid=abc; csrftoken=def", "< cookie: [redacted]"),
        # Nothing else changes.
        ("/api/rooms/?page=2&ordering=name", "/api/rooms/?page=2&ordering=name"),
        ("/ws/rooms/1/", "/ws/rooms/1/"),
        ("/a?ticket=", "/a?ticket="),
        ("ticketing=on", "ticketing=on"),
    ],
)
def test_redact(line, expected):
    assert redact(line) == expected


def _record(msg, args, name="x", exc_info=None) -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, exc_info)


def test_uvicorn_access_lines_keep_their_shape_and_lose_the_credential():
    from uvicorn.logging import AccessFormatter

    # What uvicorn's httptools protocol logs for each response.
    record = _record(
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/ws/rooms/1/?ticket=abc:def:ghi", "1.1", 404),
        name="uvicorn.access",
    )
    assert RedactCredentials().filter(record)
    formatter = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s')
    assert formatter.format(record) == (
        '127.0.0.1:5000 - "GET /ws/rooms/1/?ticket=[redacted] HTTP/1.1" 404 Not Found'
    )


def test_arguments_of_any_kind_messages_and_tracebacks_are_redacted():
    class Scope:
        def __str__(self) -> str:
            return "{'query_string': b'resume=abc'}"

    f = RedactCredentials()
    record = _record("scope=%s", (Scope(),))
    f.filter(record)
    assert record.getMessage() == "scope={'query_string': b'resume=[redacted]'}"
    record = _record("%(path)s", ({"path": "/x?ticket=abc"},))
    f.filter(record)
    assert record.getMessage() == "/x?ticket=[redacted]"
    record = _record("/x?resume=abc", None)
    f.filter(record)
    assert record.getMessage() == "/x?resume=[redacted]"
    try:
        raise ValueError("bad url /ws/rooms/1/?ticket=abc")
    except ValueError:
        import sys

        record = _record("failed", None, exc_info=sys.exc_info())
    f.filter(record)
    text = logging.Formatter().format(record)
    assert "ticket=[redacted]" in text and "abc" not in text


def test_handlers_set_up_before_django_are_protected():
    """uvicorn configures its loggers before it imports the application."""
    stream = io.StringIO()
    logger = logging.getLogger("voiceroom.tests.server.access")
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        logfilters.protect_handlers()
        logger.warning("GET %s", "/ws/rooms/1/?ticket=abc")
        assert stream.getvalue() == "GET /ws/rooms/1/?ticket=[redacted]\n"
    finally:
        logger.removeHandler(handler)


def test_django_setup_protects_the_root_handlers_and_daphnes_access_log():
    from daphne.access import AccessLogGenerator
    from django.conf import settings

    assert settings.LOGGING_CONFIG == "voiceroom.logfilters.configure"
    # The console handler of settings.LOGGING (pytest adds its own capture handlers).
    assert any(
        any(isinstance(f, RedactCredentials) for f in handler.filters)
        for handler in logging.getLogger().handlers
    )
    stream = io.StringIO()
    AccessLogGenerator(stream)(
        "http",
        "complete",
        {
            "path": "/ws/rooms/1/?ticket=abc&resume=def",
            "status": 404,
            "method": "GET",
            "client": "127.0.0.1:5000",
            "time_taken": 0.01,
            "size": 10,
        },
    )
    line = stream.getvalue()
    assert line.startswith("127.0.0.1:5000 - - [")
    assert line.endswith('"GET /ws/rooms/1/?ticket=[redacted]&resume=[redacted]" 404 10\n')
