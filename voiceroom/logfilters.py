"""Credentials never reach a log line: `ticket=`, `resume=` and `token=` values are redacted.

A socket authenticates with `?ticket=` or `?resume=` in its URL, and both servers log
that URL: uvicorn's access log and its WebSocket lines ("WebSocket /ws/rooms/1/?ticket=...
[accepted]"), daphne's access log for plain HTTP requests, Django's runserver. Anyone who
could read those logs could become the participant. Here every such value becomes
`[redacted]`; the rest of the line (client, method, path, status) stays as it was. At
debug level the WebSocket library also logs request headers: the values of
`Authorization` (the API token) and `Cookie` (the admin's session) are redacted too.

Where it applies, so that it covers every line the project's servers write:
- `RedactCredentials`, a logging Filter, on the console handler of settings.LOGGING
  (Django, rooms, voiceroom, daphne's own loggers, Twisted through daphne);
- `configure` (settings.LOGGING_CONFIG, run by django.setup(), which both servers reach
  when they import the ASGI application) also puts it on every handler configured before
  Django's: uvicorn configures its loggers (uvicorn.error, uvicorn.access, which do not
  propagate to the root) before it imports the application;
- daphne's access log is not a logger but a stream it writes to (stdout by default):
  `configure` has its adapter (realtime/servers/daphne.py, `redact_access_log`) pass
  what it writes through `redact`.
"""

from __future__ import annotations

import logging
import logging.config
import re
from urllib.parse import unquote_plus

SECRET_PARAMETERS = frozenset({"ticket", "resume", "token"})
REDACTED = "[redacted]"

# name=value where name starts a query string, a parameter, a word or a quoted string:
# "?ticket=..", "&resume=..", "b'ticket=..'" (a raw query string), " token=..".
_PARAMETER = re.compile(r"(^|[?&;\s'\"(\[{,])([^=?&;\s'\"]{1,64})=([^&;\s'\"]*)")


# A header line as HTTP libraries log it at debug level: "< authorization: Token abc".
_HEADER = re.compile(
    r"(?im)\b((?:proxy-)?authorization|(?:set-)?cookie)(\s*:\s*)[^\s'\"][^\r\n'\"]*"
)


def _hide(match: re.Match) -> str:
    name = match.group(2)
    if not match.group(3) or unquote_plus(name).strip().lower() not in SECRET_PARAMETERS:
        return match.group(0)
    return f"{match.group(1)}{name}={REDACTED}"


def redact(text: str) -> str:
    """`text` with the value of every ticket, resume or token parameter, and of every
    Authorization or Cookie header, replaced."""
    if "=" in text:
        text = _PARAMETER.sub(_hide, text)
    if ":" in text:
        text = _HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return text


def _redact_arg(arg: object) -> object:
    if isinstance(arg, str):
        return redact(arg)
    if isinstance(arg, bytes | bytearray):
        text = bytes(arg).decode("latin-1")
        cleaned = redact(text)
        return arg if cleaned == text else cleaned.encode("latin-1")
    return arg


class RedactCredentials(logging.Filter):
    """Redacts credentials in a record's message, arguments and traceback; drops nothing.

    Arguments are redacted one by one, keeping their number and types, because some
    formatters read them (uvicorn's AccessFormatter unpacks the access line's five
    arguments). Anything else that would still print a credential (an object whose
    str() contains one) is caught on the formatted message.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: the handler reports it as it would
            message = None
        if message is not None and redact(message) != message:
            record.msg, record.args = redact(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactCredentials()


def protect_handlers() -> None:
    """Put the filter on every handler any logger has now (the root's, uvicorn's, ...)."""
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, RedactCredentials) for f in handler.filters):
                handler.addFilter(_FILTER)


def configure(config: dict) -> None:
    """settings.LOGGING_CONFIG: Django's dictConfig, then the redaction everywhere."""
    logging.config.dictConfig(config)
    protect_handlers()
    # daphne's access log bypasses logging; its adapter knows how to reach it.
    from realtime.servers import daphne

    daphne.redact_access_log(redact)
