"""voiceroom.cache: one Redis client per process, whatever the async context.

No Redis is needed: building a client opens no connection.
"""

from __future__ import annotations

import asyncio

import pytest
from django.core.cache import caches

REDIS = "redis://127.0.0.1:6379/3"


def _config(backend: str) -> dict:
    return {"default": {"BACKEND": backend, "LOCATION": REDIS, "KEY_PREFIX": "vrtest-cache"}}


async def _clients_of_two_sockets() -> tuple[object, object]:
    """The Redis client each of two concurrent tasks (two sockets' contexts) gets."""

    async def one():
        return caches["default"]._cache

    return tuple(await asyncio.gather(one(), one()))


@pytest.mark.parametrize(
    "backend, shared",
    [
        # Django's own backend: a client, so a connection pool, per async context.
        ("django.core.cache.backends.redis.RedisCache", False),
        ("voiceroom.cache.SharedRedisCache", True),
    ],
)
async def test_sockets_share_the_process_client_only_with_the_shared_backend(
    settings, backend, shared
):
    settings.CACHES = _config(backend)
    first, second = await _clients_of_two_sockets()
    assert (first is second) is shared
    # ...and the pool under it, which holds the connections.
    assert (first._get_connection_pool(True) is second._get_connection_pool(True)) is shared


def test_the_settings_use_the_shared_backend_with_redis():
    from tests.voiceroom.test_settings import KEY, settings_with

    found = settings_with(DJANGO_SECRET_KEY=KEY, REDIS_URL=REDIS)
    assert found["caches"]["default"]["BACKEND"] == "voiceroom.cache.SharedRedisCache"
