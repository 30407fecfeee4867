"""The channel layer we ship still delivers to a consumer that was idle for 7 s.

With redis-py 8 (socket_timeout 5 s by default), channels_redis's core layer raises
TimeoutError from receive() on a channel idle for 5 s, which kills that consumer
(channels_redis#422). The pub/sub layer configured in voiceroom/settings.py does not; this
test keeps it that way against the versions pinned in requirements.txt.
See docs/benchmarks.md, "Channel layer"; `python -m bench.layers --parts idle` runs the
same check for both layers.
"""

from __future__ import annotations

import secrets

import pytest
from channels.layers import channel_layers

from bench.layers import idle_receive

pytestmark = pytest.mark.redis


async def test_configured_layer_delivers_after_7_s_idle():
    layer = channel_layers.make_backend("default")  # a fresh instance, as settings build it
    assert type(layer).__name__ == "RedisPubSubChannelLayer", type(layer)
    try:
        result = await idle_receive(
            layer, idle=7.0, wait_s=3.0, group=f"test-idle-{secrets.token_hex(6)}"
        )
    finally:
        await layer.flush()  # pub/sub: closes its connections; it stores no keys
    assert result["error"] is None, result
    assert result["ok"], result
