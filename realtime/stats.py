"""The relay's counters and the event loop's lag histogram: plain attributes the voice
path bumps, read by the Prometheus collector at scrape time (realtime/metrics.py)."""

from __future__ import annotations

import bisect


class Stats:
    """Plain counters, read by the Prometheus collector at scrape time (no cost per frame)."""

    __slots__ = (
        "aborted_stalled",
        "bus_dropped",
        "bus_published",
        "bus_received",
        "closed_stalled",
        "deliveries",
        "deliveries_direct",
        "dropped_backlog",
        "dropped_muted",
        "dropped_overload",
        "dropped_rate",
        "frames_in",
        "frames_in_direct",
        "frames_oversized",
        "frames_relayed",
        "refused_limit",
    )

    aborted_stalled: int
    bus_dropped: int
    bus_published: int
    bus_received: int
    closed_stalled: int
    deliveries: int
    deliveries_direct: int
    dropped_backlog: int
    dropped_muted: int
    dropped_overload: int
    dropped_rate: int
    frames_in: int
    frames_in_direct: int
    frames_oversized: int
    frames_relayed: int
    refused_limit: int

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)


stats = Stats()


class LagHistogram:
    """The event loop's lateness, as the lag watch measures it every LAG_PROBE_S: bucket
    counts read by the Prometheus collector (voiceroom_loop_lag_seconds, for its p99)."""

    BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

    __slots__ = ("count", "counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(self.BOUNDS) + 1)  # the last one: above every bound
        self.count = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.BOUNDS, seconds)] += 1
        self.count += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        out, total = [], 0
        for bound, n in zip((*map(str, self.BOUNDS), "+Inf"), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out


loop_lag = LagHistogram()
