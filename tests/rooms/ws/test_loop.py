"""rooms/ws/loop.py: voice the server hands over as it reads it never overtakes a
message still being handled."""

from __future__ import annotations

import asyncio

from rooms.ws.loop import LeanWebsocketConsumer


class Recorder(LeanWebsocketConsumer):
    def __init__(self) -> None:
        super().__init__()
        self.got: list[bytes] = []
        self._serial = asyncio.Lock()

    def voice_now(self, data: bytes) -> bool:
        self.got.append(data)
        return True


async def test_voice_is_taken_only_while_no_handler_runs():
    consumer = Recorder()
    assert consumer.voice_arrived(b"now") is True
    async with consumer._serial:  # a text frame or an event is being handled
        assert consumer.voice_arrived(b"later") is False  # it comes through voice() after
    assert consumer.got == [b"now"]


def test_a_consumer_that_does_not_take_voice_declines_it():
    class Plain(LeanWebsocketConsumer):
        pass

    consumer = Plain()
    consumer._serial = asyncio.Lock()
    assert consumer.voice_arrived(b"x") is False
