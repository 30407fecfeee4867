"""Metrics added for the dashboard: loop lag histogram, drops by reason, events, backlog."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from realtime import relay as relay_module
from realtime.relay import LagHistogram, Relay, stats


def samples(client) -> dict[tuple[str, tuple], float]:
    body = client.get("/metrics").content.decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def test_lag_histogram_counts_each_sample_in_its_bucket():
    h = LagHistogram()
    for lag in (0.0005, 0.003, 0.003, 0.2, 7.0):
        h.observe(lag)
    cumulative = dict(h.cumulative())
    assert cumulative["0.001"] == 1
    assert cumulative["0.005"] == 3
    assert cumulative["0.25"] == 4
    assert cumulative["2.5"] == 4 and cumulative["+Inf"] == 5
    assert h.count == 5 and h.sum == pytest.approx(7.2065)


async def test_the_lag_watch_feeds_the_histogram(monkeypatch):
    monkeypatch.setattr(relay_module, "loop_lag", LagHistogram())
    r = Relay()
    r.watch_lag(10.0)
    await asyncio.sleep(0.3)
    for task in r.tasks():
        task.cancel()
    assert relay_module.loop_lag.count >= 3


@pytest.mark.django_db
def test_drops_by_reason_mirror_the_relay_counters(client, monkeypatch):
    monkeypatch.setattr(stats, "dropped_muted", 7)
    monkeypatch.setattr(stats, "bus_dropped", 3)
    found = samples(client)
    assert found[("voiceroom_voice_drops_total", (("reason", "muted"),))] == 7
    assert found[("voiceroom_voice_drops_total", (("reason", "bus"),))] == 3
    assert ("voiceroom_loop_lag_seconds_bucket", (("le", "+Inf"),)) in found


@pytest.mark.django_db
def test_moderation_acts_and_webhook_backlog_are_exposed(
    client, settings, django_capture_on_commit_callbacks
):
    from rooms import services
    from tests.factories import RoomFactory, UserFactory

    settings.VOICEROOM_WEBHOOK_URL = "http://127.0.0.1:9/hook"
    settings.VOICEROOM_WEBHOOK_SECRET = "s"
    before = samples(client)
    key = ("voiceroom_events_total", (("type", "moderation.kick"),))
    room = RoomFactory()
    alice = UserFactory()
    services.member_join(room=room, user=alice)
    with django_capture_on_commit_callbacks(execute=True):  # counted once committed
        services.member_kick(room=room, actor=room.owner, user_id=alice.pk)
    after = samples(client)
    assert after[key] == before[key] + 1
    assert after[("voiceroom_webhook_backlog", (("status", "pending"),))] == 2
