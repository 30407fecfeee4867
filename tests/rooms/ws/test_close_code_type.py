"""Close codes leave the application as plain `int`s.

The codes come from rooms.contract.CloseCode, an IntEnum. daphne hands the close to
autobahn, which refuses anything whose type is not exactly `int` and fails the
connection with 1011 instead: every member would read "internal error", not the code.
"""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator

from rooms.contract import CloseCode
from rooms.ws.auth import refuse
from tests.rooms.realtime import a_room, communicator

pytestmark = [pytest.mark.django_db(transaction=True)]


async def close_of(comm: WebsocketCommunicator) -> dict:
    connected, _ = await comm.connect()
    assert connected
    out = await comm.receive_output(3)
    assert out["type"] == "websocket.close", out
    await comm.wait(1)
    return out


@pytest.mark.parametrize(("query", "code"), [("ticket=forged", 4001), ("", 4001)])
async def test_a_refused_socket_gets_a_plain_int(query, code):
    room = await a_room()
    out = await close_of(communicator(room.pk, query))
    assert out["code"] == code and type(out["code"]) is int


async def test_an_unknown_room_gets_a_plain_int():
    out = await close_of(communicator(999999, "ticket=x"))
    assert out["code"] == 4004 and type(out["code"]) is int


async def test_an_unknown_path_gets_a_plain_int():
    from voiceroom.asgi import application

    out = await close_of(WebsocketCommunicator(application, "/ws/elsewhere/"))
    assert out["code"] == 4004 and type(out["code"]) is int


async def test_refuse_sends_a_plain_int():
    sent: list[dict] = []

    async def receive():
        return {"type": "websocket.connect"}

    async def send(message):
        sent.append(message)

    await refuse(receive, send, CloseCode.TOO_MANY_SOCKETS)
    assert sent[-1] == {"type": "websocket.close", "code": 4029}
    assert type(sent[-1]["code"]) is int
