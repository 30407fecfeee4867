"""Where every Redis connection of the project comes from: one plain Redis, or the master of
a Sentinel set that follows failovers.

`RedisConfig` is made once, by the settings, from the environment:
- `REDIS_URL` alone: that Redis (`redis://[:password@]host:port/db`).
- `REDIS_SENTINELS=host:port,...` and `REDIS_SENTINEL_MASTER=<name>`: the master the
  sentinels name, asked again on every new connection, so a client that lost its
  connection finds the promoted replica. `REDIS_URL` then gives only the database
  number, user and password (its host and port are ignored);
  `REDIS_SENTINEL_PASSWORD` is for sentinels that require one.

Every Redis user builds its client here, never from a URL of its own: the channel layer
(`channel_layer_host`), the cache behind tickets and throttles (`cache_settings`),
presence (`client`), the voice bus (`async_client`). This module knows no Django.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any
from urllib.parse import unquote, urlsplit

logger = logging.getLogger(__name__)

# Sentinels answer from memory; one that does not answer within this is skipped for the
# next one, so a dead sentinel costs a client at most this per reconnection.
SENTINEL_TIMEOUT_S = 1.0


class ConfigError(ValueError):
    """The Redis settings do not make sense together."""


def parse_sentinels(raw: str) -> tuple[tuple[str, int], ...]:
    """`host:port,host:port` (spaces allowed; `[v6addr]:port` too) -> ((host, port), ...)."""
    found = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError(f"REDIS_SENTINELS: {item!r} is not host:port")
        found.append((host.strip("[]"), int(port)))
    return tuple(found)


@dataclasses.dataclass(frozen=True)
class RedisConfig:
    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str = ""
    sentinel_password: str = ""

    @classmethod
    def from_env(
        cls, url: str, sentinels: str = "", master: str = "", sentinel_password: str = ""
    ) -> RedisConfig | None:
        """The configuration the settings describe, or None for no Redis at all."""
        found = parse_sentinels(sentinels)
        if found and not master:
            raise ConfigError("REDIS_SENTINELS needs REDIS_SENTINEL_MASTER (the master's name)")
        if master and not found:
            raise ConfigError("REDIS_SENTINEL_MASTER needs REDIS_SENTINELS (host:port,...)")
        if not found:
            return cls(url) if url else None
        return cls(url or "redis:///0", found, master, sentinel_password)

    @classmethod
    def of(cls, given: RedisConfig | str) -> RedisConfig:
        return given if isinstance(given, RedisConfig) else cls(given)

    @property
    def sentinel(self) -> bool:
        return bool(self.sentinels)

    def describe(self) -> str:
        """For logs: where this goes, without the password."""
        if self.sentinel:
            where = ",".join(f"{h}:{p}" for h, p in self.sentinels)
            return f"sentinel master {self.master!r} via {where}, db {self.db}"
        parts = urlsplit(self.url)
        return f"redis {parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"

    @property
    def db(self) -> int:
        path = urlsplit(self.url).path.strip("/")
        return int(path) if path.isdigit() else 0

    def _credentials(self) -> dict[str, Any]:
        """The database, user and password of REDIS_URL: what Sentinel does not tell."""
        parts = urlsplit(self.url)
        found: dict[str, Any] = {"db": self.db}
        if parts.username:
            found["username"] = unquote(parts.username)
        if parts.password:
            found["password"] = unquote(parts.password)
        return found

    def _sentinel_kwargs(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "socket_timeout": SENTINEL_TIMEOUT_S,
            "socket_connect_timeout": SENTINEL_TIMEOUT_S,
        }
        if self.sentinel_password:
            found["password"] = self.sentinel_password
        return found

    # -- clients ---------------------------------------------------------------------------

    def client(self, **kwargs: Any):
        """A synchronous `redis.Redis` (presence, health checks, scripts)."""
        import redis
        from redis.sentinel import Sentinel

        if not self.sentinel:
            return redis.Redis.from_url(self.url, **kwargs)
        sentinel = Sentinel(list(self.sentinels), sentinel_kwargs=self._sentinel_kwargs())
        return sentinel.master_for(self.master, **self._credentials(), **kwargs)

    def async_client(self, **kwargs: Any):
        """A `redis.asyncio.Redis` (the voice bus)."""
        import redis.asyncio as aioredis
        from redis.asyncio.sentinel import Sentinel

        if not self.sentinel:
            return aioredis.Redis.from_url(self.url, **kwargs)
        sentinel = Sentinel(list(self.sentinels), sentinel_kwargs=self._sentinel_kwargs())
        return sentinel.master_for(self.master, **self._credentials(), **kwargs)

    # -- Django settings -------------------------------------------------------------------

    def channel_layer_host(self) -> dict[str, Any]:
        """One entry of channels_redis' `hosts` (its create_pool knows both forms)."""
        if not self.sentinel:
            return {"address": self.url}
        return {
            "sentinels": list(self.sentinels),
            "master_name": self.master,
            "sentinel_kwargs": self._sentinel_kwargs(),
            **self._credentials(),
        }

    def cache_settings(self, prefix: str) -> dict[str, Any]:
        """Django's own RedisCache; with Sentinel its pool comes from `SentinelPool`."""
        found: dict[str, Any] = {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": self.url,
            "KEY_PREFIX": prefix,
        }
        if self.sentinel:
            found["OPTIONS"] = {
                "pool_class": f"{__name__}.SentinelPool",
                "sentinels": list(self.sentinels),
                "master_name": self.master,
                "sentinel_kwargs": self._sentinel_kwargs(),
            }
        return found


class SentinelPool:
    """A `pool_class` for Django's RedisCache, which makes its pools with
    `pool_class.from_url(LOCATION, **OPTIONS)`: here a Sentinel-managed pool of the master,
    with the database and password of the URL."""

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        sentinels: list[tuple[str, int]],
        master_name: str,
        sentinel_kwargs: dict[str, Any] | None = None,
        **options: Any,
    ):
        from redis.sentinel import Sentinel, SentinelConnectionPool

        credentials = RedisConfig(url)._credentials()
        manager = Sentinel([tuple(s) for s in sentinels], sentinel_kwargs=sentinel_kwargs)
        return SentinelConnectionPool(master_name, manager, **credentials, **options)


# -- following the master ------------------------------------------------------------------

FOLLOW_EVERY_S = 1.0


async def follow_master(config: RedisConfig, on_move, every: float = FOLLOW_EVERY_S) -> None:
    """Ask the sentinels for the master every `every` seconds; when they name another one
    than before, `await on_move(address)`.

    A connection to a master that died with its host, or hangs, never fails by itself
    (no TCP reset, and a pub/sub connection only reads): a subscription would stay on the
    old master for ever while every PUBLISH goes to the new one. So the runtime closes
    such connections when the master moves (`Runtime._master_moved`)."""
    import redis.asyncio.sentinel as aiosentinel

    sentinel = aiosentinel.Sentinel(
        list(config.sentinels), sentinel_kwargs=config._sentinel_kwargs()
    )
    known = None
    try:
        while True:
            try:
                address = await sentinel.discover_master(config.master)
            except asyncio.CancelledError:
                raise
            except Exception:  # no sentinel answers, or the master is down, not yet replaced
                address = None
            if address is not None:
                if known is not None and address != known:
                    logger.warning("Redis master moved from %s to %s", known, address)
                    try:
                        await on_move(address)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        logger.warning(
                            "dropping connections to the old master failed", exc_info=True
                        )
                known = address
            await asyncio.sleep(every)
    finally:
        for client in sentinel.sentinels:
            try:
                await client.aclose()
            except Exception:
                pass


def on_old_master(connection, master: tuple[str, int] | None) -> bool:
    """Whether this pub/sub connection is open and not on `master` (None: on any)."""
    if connection is None or not connection.is_connected:
        return False
    return master is None or (connection.host, int(connection.port)) != tuple(master)


async def drop_channel_layer_connections(layer, master: tuple[str, int] | None = None) -> None:
    """Close the connections of a channels_redis pub/sub layer (its subscriber's and its
    pool's), so that they reconnect through the sentinels. channels_redis has no public
    way to do this: this is the one place that reaches into it (`_shards`, `_pubsub`,
    `_redis`; checked by tests/realtime/test_redis_client.py). Its receive loop logs the
    error, waits a second and resubscribes every channel and group by itself. A
    subscription already on `master` (it reconnected by itself) is left alone."""
    for shard in getattr(layer, "_shards", ()):
        pubsub = getattr(shard, "_pubsub", None)
        client = getattr(shard, "_redis", None)
        if pubsub is not None and on_old_master(pubsub.connection, master):
            await pubsub.connection.disconnect()
        if client is not None:
            await client.connection_pool.disconnect()
