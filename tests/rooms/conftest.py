"""Fixtures shared by the room tests that start real server processes."""

from __future__ import annotations

import pytest

from tests.live import base_env, database_for_processes, migrate


@pytest.fixture(scope="module")
def live_db():
    """A migrated database that a test module's server processes share (SQLite, or a
    fresh MySQL database when DATABASE_URL points at one)."""
    url, cleanup = database_for_processes()
    migrate(base_env(DATABASE_URL=url))
    yield url
    cleanup()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def channel_layer(request, settings) -> str:
    """Runs a socket test with the in-memory channel layer and, marked `redis`, with the
    Redis pub/sub layer of REDIS_URL (what several nodes share): text that one layer
    carries, the other may not (the Redis layer packs messages with msgpack)."""
    if request.param == "memory":
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    else:
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {
                    "hosts": [{"address": settings.REDIS_URL}],
                    "prefix": settings.VOICEROOM_REDIS_PREFIX,
                },
            }
        }
    return request.param
