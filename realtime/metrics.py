"""Prometheus metrics of the realtime side, read from plain counters at scrape time.

The voice path only bumps integer attributes (realtime.relay.stats); turning them into
metrics happens here, when /metrics is scraped, so metrics cost nothing per frame.
"""

from __future__ import annotations

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import REGISTRY, Collector

from realtime import runtime
from realtime.relay import loop_lag, stats

_COUNTERS = {
    "frames_in": "Voice frames received from clients",
    "frames_in_direct": "Of those, handed to the relay by the server as they were read"
    " (uvicorn's inbound fast path) instead of through the ASGI receive",
    "frames_relayed": "Voice frames accepted for relay (sequence numbers issued)",
    "deliveries": "Voice frames handed to local sockets",
    "deliveries_direct": "Of those, handed to the server's fast path (the frame encoded once"
    " for all its recipients) instead of the ASGI send",
    "dropped_backlog": "Voice frames dropped because the listener's socket was backed up",
    "dropped_rate": "Voice frames dropped by the per-socket rate limit",
    "dropped_muted": "Voice frames dropped because the sender may not speak",
    "dropped_overload": "Voice frames shed because this node's event loop ran late",
    "frames_oversized": "Voice frames refused for their size",
    "bus_published": "Voice frames published to Redis for other nodes (hellos not counted)",
    "bus_received": "Voice frames received from other nodes through Redis",
    "bus_dropped": "Voice messages for other nodes dropped because Redis failed or hung",
}


# The same drops as above, as one metric with a reason label (dashboards sum by reason).
_DROPS = {
    "backlog": "dropped_backlog",
    "rate": "dropped_rate",
    "muted": "dropped_muted",
    "overload": "dropped_overload",
    "bus": "bus_dropped",
}


class RelayCollector(Collector):
    def collect(self):
        for name, doc in _COUNTERS.items():
            yield CounterMetricFamily(f"voiceroom_voice_{name}", doc, value=getattr(stats, name))
        drops = CounterMetricFamily(
            "voiceroom_voice_drops", "Voice frames dropped, by reason", labels=["reason"]
        )
        for reason, attr in _DROPS.items():
            drops.add_metric([reason], getattr(stats, attr))
        yield drops
        yield HistogramMetricFamily(
            "voiceroom_loop_lag_seconds",
            "How late this node's event loop ran, sampled every 50 ms while voice shedding "
            "is on (VOICEROOM_SHED_AFTER_LAG_MS > 0)",
            buckets=loop_lag.cumulative(),
            sum_value=loop_lag.sum,
        )
        yield CounterMetricFamily(
            "voiceroom_sockets_closed_stalled",
            "Sockets closed with 4014 because they took no data for "
            "VOICEROOM_STALLED_SOCKET_CLOSE_S",
            value=stats.closed_stalled,
        )
        yield CounterMetricFamily(
            "voiceroom_sockets_aborted_stalled",
            "Stalled sockets aborted because even the 4014 close could not leave",
            value=stats.aborted_stalled,
        )
        yield CounterMetricFamily(
            "voiceroom_sockets_refused_limit",
            "Sockets closed with 4029: too many sockets for one user or one address",
            value=stats.refused_limit,
        )
        relay = runtime.current().relay
        yield GaugeMetricFamily(
            "voiceroom_rooms_local", "Rooms with sockets on this node", value=len(relay.rooms)
        )
        yield GaugeMetricFamily(
            "voiceroom_sockets_local",
            "Room sockets on this node",
            value=sum(len(r) for r in relay.rooms.values()),
        )


_registered = False


def register() -> None:
    global _registered
    if not _registered:
        REGISTRY.register(RelayCollector())
        _registered = True
