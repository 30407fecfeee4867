"""How a socket proves who it is: exactly one of the contract's three ways.

- `?ticket=` from REST join/ticket: signed, single use, short-lived, bound to the room;
- `Authorization: Token <key>` header (the mini-program's wx.connectSocket sends headers);
- `?resume=` from the latest `welcome`: bound to user, room and session, single use, and
  only while the session is in its resume window (used up in `participant_connect`).

The middleware only resolves credentials into `scope["voiceroom_auth"]`; the consumer
accepts the handshake first and then closes with the documented code, so every client
can read why (an HTTP 403 on the upgrade would hide it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

from channels.db import database_sync_to_async
from channels.security.websocket import OriginValidator as ChannelsOriginValidator
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.db import DatabaseError
from redis.exceptions import RedisError

from realtime import presence
from realtime.relay import stats
from rooms import services
from rooms.contract import CloseCode

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SocketAuth:
    user_id: int | None
    method: str  # "ticket" | "token" | "resume" | "none" | "unavailable"
    resume_session: str | None = None
    resume_token: str | None = None  # used up when the socket attaches (single use)
    error: str = ""
    # The user's credentials epoch the ticket or Token was issued under (None for a
    # resume token): participant_connect refuses it once the user's has moved on.
    epoch: float | None = None


def _query(scope) -> dict[str, str]:
    try:
        parsed = parse_qs(scope.get("query_string", b"").decode("latin-1"), max_num_fields=20)
    except ValueError:
        return {}
    return {k: v[0] for k, v in parsed.items() if v}


def _header(scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return ""


def _token_user(header: str):
    """The user of a live API token (unknown, expired or revoked: None)."""
    from accounts.authentication import token_user

    keyword, _, key = header.strip().partition(" ")
    if keyword != "Token" or not key.strip():
        return None
    return token_user(key.strip())


@database_sync_to_async
def resolve(scope, room_id: int) -> SocketAuth:
    query = _query(scope)
    header = _header(scope, b"authorization")
    header_user = _token_user(header) if header else None
    if header and header_user is None:
        return SocketAuth(None, "token", error="invalid Authorization header")

    def agrees(user_id: int) -> bool:
        return header_user is None or header_user.pk == user_id

    if "resume" in query:
        token = query["resume"][:200]
        found = presence.store().resolve_resume_token(token)
        if found is None or found[0] != room_id or not agrees(found[1]):
            return SocketAuth(None, "resume", error="unknown, used or expired resume token")
        return SocketAuth(found[1], "resume", resume_session=found[2], resume_token=token)
    if "ticket" in query:
        holder = services.ticket_redeem(
            ticket=query["ticket"][:1000],
            room_id=room_id,
            user_id=header_user.pk if header_user is not None else None,
        )
        if holder is None:
            return SocketAuth(None, "ticket", error="invalid, used or expired ticket")
        return SocketAuth(holder.user_id, "ticket", epoch=holder.epoch)
    if header_user is not None:
        return SocketAuth(header_user.pk, "token", epoch=header_user.credentials_epoch)
    return SocketAuth(
        None, "none", error="no credentials: use ?ticket=, ?resume= or a Token header"
    )


class SocketAuthMiddleware:
    """Resolves the socket's credentials for the room in the URL; never refuses by itself."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        room_id = scope.get("url_route", {}).get("kwargs", {}).get("room_id")
        if room_id is not None:
            try:
                auth = await resolve(scope, int(room_id))
            except (DatabaseError, RedisError):
                # The consumer closes with 4503: try again shortly (not a bad credential).
                logger.warning("socket credentials not checked: a dependency is down")
                auth = SocketAuth(None, "unavailable", error="database or Redis unavailable")
            scope = dict(scope, voiceroom_auth=auth)
        return await self.app(scope, receive, send)


class OriginValidator(ChannelsOriginValidator):
    """Channels' AllowedHostsOriginValidator, with two changes for native clients.

    A socket without an Origin header comes from a native client (the mini-program,
    an operator script), not from a browser page, so it cannot be a cross-site request:
    it is allowed and still has to authenticate. Browser origins must match
    ALLOWED_HOSTS or VOICEROOM_ALLOWED_ORIGINS.
    """

    def __init__(self, application) -> None:
        allowed = list(settings.ALLOWED_HOSTS) + list(settings.VOICEROOM_ALLOWED_ORIGINS)
        if settings.DEBUG and not allowed:
            allowed = ["localhost", "127.0.0.1", "[::1]"]
        super().__init__(application, allowed)

    async def __call__(self, scope, receive, send):
        # Channels' own __call__ lets urlparse's ValueError escape ("Origin: http://[")
        # and so does reading a port out of range ("http://host:99999"): the handshake
        # then failed with a server error. A header that is not a URL is refused like
        # any other foreign origin.
        try:
            allowed = self.valid_origin(_origin(scope))
        except ValueError:
            allowed = False
        if allowed:
            # The stubs allow an ASGI2 application here; ours is ASGI3.
            return await self.application(scope, receive, send)  # type: ignore[misc, call-arg]
        return await WebsocketDenier()(scope, receive, send)

    def valid_origin(self, parsed_origin) -> bool:
        if parsed_origin is None:
            return True
        return self.validate_origin(parsed_origin)


class AddressLimitMiddleware:
    """At most VOICEROOM_MAX_SOCKETS_PER_ADDRESS open sockets per client address on this
    node (0: no limit), counted before any credential is looked at, so a flood of
    sockets from one address costs no database work. Over the limit: accept, then close
    4029, like every other refusal. The address is the server's `client`, which uvicorn
    and daphne take from X-Forwarded-For when run with --proxy-headers behind a proxy.
    """

    def __init__(self, app) -> None:
        self.app = app
        self.open: dict[str, int] = {}

    async def __call__(self, scope, receive, send):
        limit = settings.VOICEROOM_MAX_SOCKETS_PER_ADDRESS
        address = (scope.get("client") or ("",))[0] or ""
        count = self.open.get(address, 0)
        if limit and count >= limit:
            stats.refused_limit += 1
            await refuse(receive, send, CloseCode.TOO_MANY_SOCKETS)
            return
        self.open[address] = count + 1
        try:
            return await self.app(scope, receive, send)
        finally:
            left = self.open.get(address, 1) - 1
            if left > 0:
                self.open[address] = left
            else:
                self.open.pop(address, None)


async def refuse(receive, send, code: int) -> None:
    """Complete the handshake, then close with `code` (clients can read a close code,
    not why an upgrade failed)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    # A plain int: daphne (autobahn) refuses an int subclass such as CloseCode.
    await send({"type": "websocket.close", "code": int(code)})


def _origin(scope):
    """The parsed Origin header (the last one, like Channels), or None without one."""
    raw = None
    for key, value in scope.get("headers", []):
        if key == b"origin":
            raw = value
    return None if raw is None else urlparse(raw.decode("latin-1"))
