"""rooms.ws.auth's address limit: sockets per client address on one node."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator

from realtime.relay import stats
from tests.rooms.realtime import a_member, a_room
from voiceroom.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True)]


def from_address(address: str):
    async def app(scope, receive, send):
        return await application(dict(scope, client=(address, 40000)), receive, send)

    return app


async def opened(room_id: int, address: str, query: str = "") -> WebsocketCommunicator:
    comm = WebsocketCommunicator(from_address(address), f"/ws/rooms/{room_id}/?{query}")
    connected, _ = await comm.connect()
    assert connected
    return comm


async def test_sockets_over_the_per_address_limit_close_4029_before_any_credential(settings):
    settings.VOICEROOM_MAX_SOCKETS_PER_ADDRESS = 2
    room = await a_room()
    members = [await a_member(room) for _ in range(3)]
    first = await opened(room.pk, "203.0.113.7", f"ticket={members[0][1]}")
    assert (await first.receive_output(3))["type"] == "websocket.send"  # welcome
    second = await opened(room.pk, "203.0.113.7", f"ticket={members[1][1]}")
    assert (await second.receive_output(3))["type"] == "websocket.send"
    refused_before = stats.refused_limit

    third = await opened(room.pk, "203.0.113.7", f"ticket={members[2][1]}")
    assert (await third.receive_output(3)) == {"type": "websocket.close", "code": 4029}
    assert stats.refused_limit == refused_before + 1
    # Even with no credentials at all: refused for the address, not checked further.
    anonymous = await opened(room.pk, "203.0.113.7")
    assert (await anonymous.receive_output(3))["code"] == 4029

    # Another address is not affected, and the third member's ticket was not used up.
    other = await opened(room.pk, "198.51.100.1", f"ticket={members[2][1]}")
    assert (await other.receive_output(3))["type"] == "websocket.send"

    # A socket that closes frees its place.
    await first.disconnect()
    await second.receive_output(3)  # participant.updated: first dropped
    again = await opened(room.pk, "203.0.113.7")
    assert (await again.receive_output(3))["code"] == 4001  # checked again: no credential
    for comm in (second, other):
        await comm.disconnect()


async def test_no_limit_when_set_to_zero(settings):
    settings.VOICEROOM_MAX_SOCKETS_PER_ADDRESS = 0
    room = await a_room()
    comms = [await opened(room.pk, "203.0.113.9") for _ in range(5)]
    for comm in comms:
        assert (await comm.receive_output(3))["code"] == 4001  # refused only for credentials


# -- browser origins -------------------------------------------------------------------


def origin_app():
    """The socket stack as asgi.py builds it, under the current settings."""
    from channels.routing import URLRouter

    from rooms.ws.auth import OriginValidator, SocketAuthMiddleware
    from rooms.ws.routing import websocket_urlpatterns

    return OriginValidator(SocketAuthMiddleware(URLRouter(websocket_urlpatterns)))


async def handshake(app, room_id: int, query: str, origin: bytes | None):
    headers = [(b"origin", origin)] if origin is not None else []
    comm = WebsocketCommunicator(app, f"/ws/rooms/{room_id}/?{query}", headers=headers)
    return comm, await comm.connect()


async def test_a_foreign_browser_origin_is_refused_with_403_and_the_ticket_kept(settings):
    settings.ALLOWED_HOSTS = ["voice.example.com"]
    settings.VOICEROOM_ALLOWED_ORIGINS = ["https://partner.example.org"]
    app = origin_app()
    room = await a_room()
    _, ticket = await a_member(room)

    # Closed before the handshake completes: servers answer the upgrade with HTTP 403.
    _, (accepted, _) = await handshake(app, room.pk, f"ticket={ticket}", b"https://evil.example")
    assert accepted is False

    # The listed origins, and native clients that send no Origin at all, get in.
    for origin in (b"https://voice.example.com", b"https://partner.example.org", None):
        _, fresh = await a_member(room)
        comm, (accepted, _) = await handshake(app, room.pk, f"ticket={fresh}", origin)
        assert accepted, origin
        assert (await comm.receive_output(3))["type"] == "websocket.send"  # welcome
        await comm.disconnect()
    # The refused handshake did not spend the ticket.
    comm, (accepted, _) = await handshake(app, room.pk, f"ticket={ticket}", None)
    assert accepted and (await comm.receive_output(3))["type"] == "websocket.send"
    await comm.disconnect()
