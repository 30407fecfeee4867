"""realtime.servers.uvicorn: the log line any client can trigger is not a server error."""

from __future__ import annotations

import logging
import sys

import realtime.servers.uvicorn  # noqa: F401 (installs the filter)


def test_a_non_utf8_text_frame_is_logged_as_one_info_line_without_traceback(caplog):
    logger = logging.getLogger("uvicorn.error")
    try:
        b"\xff".decode()
    except UnicodeDecodeError:
        with caplog.at_level(logging.INFO, logger="uvicorn.error"):
            logger.exception("Invalid UTF-8 sequence received from client.")
            logger.error("something else broke", exc_info=sys.exc_info())
    client, other = caplog.records
    assert (client.levelname, client.exc_info) == ("INFO", None)
    assert "1007" in client.getMessage()
    assert other.levelname == "ERROR" and other.exc_info is not None
