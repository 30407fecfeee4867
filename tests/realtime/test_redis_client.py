"""realtime/redis_client.py: the settings' Redis description, and every client built from it
following a real Sentinel failover (presence's client, the voice bus's asyncio client,
the channel layer, Django's cache)."""

from __future__ import annotations

import asyncio
import time

import pytest

from realtime.redis_client import ConfigError, RedisConfig, parse_sentinels
from tests.live import SentinelSet


def test_parse_sentinels():
    assert parse_sentinels(" a:1, b:26379 ,,[::1]:3") == (("a", 1), ("b", 26379), ("::1", 3))
    for bad in ("a", "a:", ":1", "a:b"):
        with pytest.raises(ConfigError):
            parse_sentinels(bad)


def test_from_env():
    assert RedisConfig.from_env("") is None
    plain = RedisConfig.from_env("redis://:pw@h:7/2")
    assert plain is not None and not plain.sentinel
    assert plain.channel_layer_host() == {"address": "redis://:pw@h:7/2"}
    assert "OPTIONS" not in plain.cache_settings("vr")
    with pytest.raises(ConfigError, match="REDIS_SENTINEL_MASTER"):
        RedisConfig.from_env("redis:///0", "h:1")
    with pytest.raises(ConfigError, match="REDIS_SENTINELS"):
        RedisConfig.from_env("redis:///0", "", "m")
    sentinel = RedisConfig.from_env("redis://us%40r:p%3Aw@ignored/3", "h:1", "m", "spw")
    assert sentinel is not None and sentinel.sentinel and sentinel.db == 3
    host = sentinel.channel_layer_host()
    assert (host["username"], host["password"], host["db"]) == ("us@r", "p:w", 3)
    assert host["sentinel_kwargs"]["password"] == "spw"
    assert "p:w" not in sentinel.describe() and "pw" not in plain.describe()
    # No REDIS_URL with Sentinel: database 0, no password.
    bare = RedisConfig.from_env("", "h:1", "m")
    assert bare is not None and bare.channel_layer_host()["db"] == 0


@pytest.fixture
def sentinel_set():
    started = SentinelSet().start()
    yield started
    print(started.output())
    started.stop()


def _retry(call, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except Exception:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not back within {timeout} s") from None
            time.sleep(0.1)


async def _aretry(call, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await call()
        except Exception:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not back within {timeout} s") from None
            await asyncio.sleep(0.1)


@pytest.mark.processes
@pytest.mark.sentinel
async def test_every_client_follows_the_master_through_a_failover(sentinel_set):
    from channels_redis.pubsub import RedisPubSubChannelLayer
    from django.core.cache.backends.redis import RedisCache

    env = sentinel_set.env
    config = RedisConfig.from_env(
        env["REDIS_URL"], env["REDIS_SENTINELS"], env["REDIS_SENTINEL_MASTER"]
    )
    sync = config.client(socket_timeout=2, socket_connect_timeout=2)
    aio = config.async_client(socket_timeout=2, socket_connect_timeout=2)
    cache_settings = config.cache_settings("t")
    cache = RedisCache(cache_settings["LOCATION"], {"OPTIONS": cache_settings["OPTIONS"]})
    layer = RedisPubSubChannelLayer(hosts=[config.channel_layer_host()], prefix="t")

    async def round_trip(n: int) -> None:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "x", "n": n})
        message = await asyncio.wait_for(layer.receive(channel), 5)
        assert message["n"] == n

    try:
        await asyncio.to_thread(sync.set, "k", "before")
        assert await aio.get("k") == b"before"
        await asyncio.to_thread(cache.set, "c", "before")
        assert await asyncio.to_thread(cache.get, "c") == "before"
        await round_trip(1)

        sentinel_set.master.kill()
        await asyncio.to_thread(
            _retry, lambda: sync.set("k", "after"), "the synchronous client (presence)"
        )
        assert await _aretry(lambda: aio.get("k"), "the asyncio client (voice bus)") == b"after"
        await asyncio.to_thread(_retry, lambda: cache.set("c", "after"), "the cache")
        assert await asyncio.to_thread(cache.get, "c") == "after"
        await _aretry(lambda: round_trip(2), "the channel layer")
        # They all reached the replica, now the master.
        assert sentinel_set.master_port() == sentinel_set.replica.port
        import redis

        promoted = redis.Redis(port=sentinel_set.replica.port)
        assert promoted.get("k") == b"after"
        promoted.close()
    finally:
        await layer.flush()
        await aio.aclose()
        sync.close()


@pytest.mark.processes
@pytest.mark.sentinel
async def test_dropping_the_channel_layer_connections_reaches_them_and_it_recovers(
    sentinel_set,
):
    """`drop_channel_layer_connections` relies on channels_redis internals: it must really
    close the subscriber's connection, and the layer must then resubscribe by itself."""
    from channels_redis.pubsub import RedisPubSubChannelLayer

    from realtime.redis_client import drop_channel_layer_connections

    env = sentinel_set.env
    config = RedisConfig.from_env(
        env["REDIS_URL"], env["REDIS_SENTINELS"], env["REDIS_SENTINEL_MASTER"]
    )
    layer = RedisPubSubChannelLayer(hosts=[config.channel_layer_host()], prefix="t")
    try:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "x", "n": 1})
        assert (await asyncio.wait_for(layer.receive(channel), 5))["n"] == 1
        [shard] = layer._shards
        connection = shard._pubsub.connection
        assert connection.is_connected
        await drop_channel_layer_connections(layer)
        assert not connection.is_connected

        # One receive stays pending throughout: channels_redis unsubscribes a channel
        # whose receive is cancelled.
        waiter = asyncio.ensure_future(layer.receive(channel))
        deadline = time.monotonic() + 15
        while not waiter.done():
            assert time.monotonic() < deadline, "the layer did not resubscribe"
            try:
                await layer.send(channel, {"type": "x", "n": 2})
            except Exception:
                pass
            await asyncio.wait([waiter], timeout=0.2)
        assert waiter.result()["n"] == 2
    finally:
        await layer.flush()
