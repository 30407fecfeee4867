"""Delivery to a real HTTP receiver on 127.0.0.1: retries, order, signatures, leases."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from rooms import services
from tests.factories import RoomFactory
from tests.live import free_port
from tests.webhooks.conftest import SECRET
from tests.webhooks.receiver import Receiver, assert_per_room_order
from webhooks import delivery
from webhooks.models import Event
from webhooks.services import event_replay


@contextlib.contextmanager
def delivering(owner: str):
    """The delivery loop of one process (its own thread and event loop), as a node runs it."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failed: list[BaseException] = []

    def main() -> None:
        try:
            loop.run_until_complete(delivery.run(owner, stop=stop))
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        loop.call_soon_threadsafe(delivery.wake)
        thread.join(10)
        loop.close()
    assert not failed, failed


def wait_for(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def make_burst(rooms: int = 3) -> None:
    """Several rooms, several events each (created, closed, opened, closed)."""
    for _ in range(rooms):
        room = RoomFactory()
        services.room_close(room=room, actor=room.owner)
        services.room_open(room=room, actor=room.owner)
        services.room_close(room=room, actor=room.owner)


def stored_by_room() -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for event in Event.objects.order_by("id"):
        out.setdefault(event.room_id, []).append(str(event.uid))
    return out


def all_delivered() -> bool:
    return not Event.objects.exclude(status=Event.Status.DELIVERED).exists()


@pytest.mark.django_db(transaction=True)
def test_receiver_down_then_back_gets_every_event_as_stored_in_room_order(webhooks_on):
    port = free_port()
    webhooks_on.VOICEROOM_WEBHOOK_URL = f"http://127.0.0.1:{port}/hook"
    make_burst()
    receiver = Receiver(port)
    with delivering("node-a"):
        # Down: every room's first event is tried, refused, and waits; nothing later goes.
        wait_for(lambda: Event.objects.filter(attempts__gte=3).count() == 3)
        assert Event.objects.filter(attempts=0).count() == 9
        assert not Event.objects.filter(status=Event.Status.DELIVERED).exists()
        assert "Connection refused" in Event.objects.filter(attempts__gte=1)[0].last_error
        receiver.start()
        try:
            wait_for(all_delivered)
        finally:
            receiver.stop()
    stored = {e.body.encode() for e in Event.objects.all()}
    got = receiver.bodies()
    assert sorted(got) == sorted(stored)  # every event, once, byte for byte
    receiver.check_signatures(SECRET)
    assert_per_room_order([json.loads(b) for b in got], stored_by_room())


@pytest.mark.django_db(transaction=True)
def test_a_receiver_answering_errors_gets_retries_until_it_answers_2xx(webhooks_on):
    receiver = Receiver(status=503).start()
    webhooks_on.VOICEROOM_WEBHOOK_URL = receiver.url
    try:
        make_burst(rooms=1)
        with delivering("node-a"):
            wait_for(lambda: Event.objects.filter(attempts__gte=2).exists())
            assert Event.objects.filter(last_error="HTTP 503").exists()
            receiver.status = 204
            wait_for(all_delivered)
    finally:
        receiver.stop()
    assert [json.loads(b)["type"] for b in receiver.bodies()] == [
        "room.created",
        "room.closed",
        "room.opened",
        "room.closed",
    ]


@pytest.mark.django_db(transaction=True)
def test_an_event_refused_past_its_retry_period_fails_and_replays(webhooks_on):
    receiver = Receiver(status=500).start()
    webhooks_on.VOICEROOM_WEBHOOK_URL = receiver.url
    webhooks_on.VOICEROOM_WEBHOOK_RETRY_FOR_S = 0.3
    try:
        room = RoomFactory()
        services.room_close(room=room, actor=room.owner)
        with delivering("node-a"):
            wait_for(lambda: Event.objects.filter(status=Event.Status.FAILED).count() == 2)
            first = Event.objects.order_by("id").first()
            assert first.attempts >= 2
            receiver.status = 200
            event_replay(event=first)
            wait_for(lambda: Event.objects.filter(status=Event.Status.DELIVERED).count() == 1)
    finally:
        receiver.stop()
    assert receiver.bodies() == [first.body.encode()]
    assert Event.objects.get(pk=first.pk).status == Event.Status.DELIVERED


@pytest.mark.django_db
def test_a_leased_event_holds_back_its_room_and_no_other_node_takes_it(webhooks_on):
    make_burst(rooms=2)
    heads = delivery.claim("node-a")
    assert [c.body for c in heads] == [
        e.body for e in Event.objects.filter(type="room.created").order_by("id")
    ]
    assert delivery.claim("node-b") == []  # leased: not again, and not the rooms' next
    # A node that died: its lease runs out, another node takes the event.
    Event.objects.update(lease_until=timezone.now() - timedelta(seconds=1))
    again = delivery.claim("node-b")
    assert [c.pk for c in again] == [c.pk for c in heads]
    # The dead node's late outcome is ignored: node-b holds the event now.
    delivery.finish("node-a", [(heads[0], "")])
    assert Event.objects.get(pk=heads[0].pk).status == Event.Status.PENDING
    delivery.finish("node-b", [(again[0], "")])
    assert Event.objects.get(pk=heads[0].pk).status == Event.Status.DELIVERED
    # Now that room's next event is its head.
    nxt = delivery.claim("node-b")
    assert [Event.objects.get(pk=c.pk).type for c in nxt] == ["room.closed"]


@pytest.mark.mysql
@pytest.mark.django_db(transaction=True)
def test_two_nodes_delivering_together_send_each_event_once_in_room_order(webhooks_on):
    receiver = Receiver(delay_s=0.01).start()
    webhooks_on.VOICEROOM_WEBHOOK_URL = receiver.url
    try:
        make_burst(rooms=6)
        with delivering("node-a"), delivering("node-b"):
            wait_for(all_delivered, timeout=60)
    finally:
        receiver.stop()
    got = receiver.bodies()
    assert len(got) == len(set(got)) == 24
    receiver.check_signatures(SECRET)
    assert_per_room_order([json.loads(b) for b in got], stored_by_room())


def test_signature_is_hmac_sha256_of_the_raw_body():
    # The contract's example computed independently: hashlib/hmac of the same bytes.
    import hashlib
    import hmac

    body = b'{"id":"x"}'
    expected = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert delivery.sign(body, "k") == f"sha256={expected}"


def test_backoff_doubles_up_to_its_ceiling(settings):
    settings.VOICEROOM_WEBHOOK_BACKOFF_MIN_S = 1.0
    settings.VOICEROOM_WEBHOOK_BACKOFF_MAX_S = 600.0
    assert [delivery.backoff_s(n) for n in (1, 2, 3, 10, 11, 50)] == [1, 2, 4, 512, 600, 600]


@pytest.mark.django_db(transaction=True)
async def test_every_runtime_runs_the_delivery_job_when_configured_and_on(settings):
    from realtime import runtime

    assert runtime._jobs["webhooks"] is delivery.run_job  # registered by webhooks/apps.py
    rt = runtime.Runtime()
    settings.VOICEROOM_WEBHOOK_URL = ""
    await asyncio.wait_for(delivery.run_job(rt), 1)  # nothing to do: returns at once
    settings.VOICEROOM_WEBHOOK_URL = "http://127.0.0.1:9/hook"
    settings.VOICEROOM_WEBHOOK_SECRET = SECRET
    settings.VOICEROOM_WEBHOOK_DELIVERY = False
    await asyncio.wait_for(delivery.run_job(rt), 1)  # delivery left to the worker command
    settings.VOICEROOM_WEBHOOK_DELIVERY = True
    task = asyncio.create_task(delivery.run_job(rt))
    await asyncio.sleep(0.3)
    assert not task.done()  # delivering until the runtime stops
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.mark.django_db
def test_rooms_waiting_for_a_retry_do_not_hide_rooms_that_are_due(webhooks_on, monkeypatch):
    monkeypatch.setattr(delivery, "HEADS_CHUNK", 2)
    make_burst(rooms=5)
    later = timezone.now() + timedelta(hours=1)
    waiting = list(Event.objects.filter(type="room.created").order_by("id")[:4])
    Event.objects.filter(pk__in=[e.pk for e in waiting]).update(next_attempt_at=later)
    claimed = delivery.claim("node-a")
    assert [c.room_id for c in claimed] == [
        Event.objects.filter(type="room.created").last().room_id
    ]
