"""Django's Redis cache with one client, and so one connection pool, per process.

Django keeps a cache object per async context (`django.core.cache.caches` is an asgiref
`Local`), and Django's RedisCache builds its own connection pool per object. Under ASGI
every WebSocket connection is a context of its own and never ends a request (the
`request_finished` signal that closes caches does not fire for it), so every socket that
touched the cache (ticket redemption, throttles) held a Redis connection, with its
parser buffer, for as long as it was open: about 8 KiB of Python memory per idle socket
measured with tracemalloc (issue 17), and a client on the Redis side. redis-py's
connection pool is thread-safe and fork-safe, so one per process serves every context.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache.backends.redis import RedisCache
from django.utils.functional import cached_property

_clients: dict[tuple, Any] = {}
_lock = threading.Lock()


class SharedRedisCache(RedisCache):
    # Set by RedisCache.__init__; django-stubs do not declare these private attributes.
    _servers: list[str]
    _class: type
    _options: dict[str, Any]

    @cached_property
    def _cache(self):
        key = (tuple(self._servers), repr(sorted(self._options.items())))
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = self._class(self._servers, **self._options)
        return client
