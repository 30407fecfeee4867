"""The voice bus before it has a Redis connection, or after it lost its subscriber."""

from __future__ import annotations

import pytest

from realtime.bus import VoiceBus
from realtime.relay import Relay


def test_the_bus_has_no_redis_client_before_start():
    bus = VoiceBus(Relay(), url="redis://unused", prefix="t", node_id="node-a")
    with pytest.raises(RuntimeError, match="not started"):
        bus._redis()


async def test_a_subscription_change_without_a_subscriber_waits_for_the_next_one():
    # Between losing Redis and reconnecting the subscriber has no pubsub; the reconnect
    # subscribes (and greets) every watched room, so a late change has nothing to do.
    bus = VoiceBus(Relay(), url="redis://unused", prefix="t", node_id="node-a")
    bus._watched.add(1)
    assert bus._pubsub is None
    await bus._subscribe_and_greet([1])
    assert bus._queue == []
