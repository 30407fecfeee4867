"""Record events in the outbox (`record_event`), and replay one (the admin).

Every service that makes a change the contract's webhook list names calls
`record_event` inside its own transaction: the event row commits, or rolls back, with
the change. Nothing is stored while VOICEROOM_WEBHOOK_URL is unset.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from webhooks import metrics
from webhooks.models import Event, Stream

# The contract's list (api-v1.md, v1.1 "Webhooks").
TYPES = frozenset(
    {
        "room.created",
        "room.closed",
        "room.opened",
        "participant.joined",
        "participant.left",
        "moderation.mute",
        "moderation.kick",
        "moderation.ban",
        "moderation.unban",
        "report.created",
        "recording.started",
        "recording.stopped",
    }
)


def enabled() -> bool:
    return bool(settings.VOICEROOM_WEBHOOK_URL)


def record_event(type: str, room_id: int, data: dict[str, Any]) -> Event | None:
    """Store the event `type` of room `room_id` with its `data` (JSON-able), in the
    caller's transaction (or a transaction of its own). Returns the row, or None when
    webhooks are off."""
    if type not in TYPES:
        raise ValueError(f"unknown webhook event type {type!r}")
    transaction.on_commit(lambda: metrics.event_recorded(type))
    if not enabled():
        return None
    with transaction.atomic():
        _lock_stream(int(room_id))
        now = timezone.now()
        uid = uuid.uuid4()
        body = json.dumps(
            {
                "id": str(uid),
                "type": type,
                "created_at": now.isoformat().replace("+00:00", "Z"),
                "room_id": int(room_id),
                "data": data,
            },
            separators=(",", ":"),
            sort_keys=True,
        )
        event = Event.objects.create(
            uid=uid,
            type=type,
            room_id=room_id,
            body=body,
            created_at=now,
            next_attempt_at=now,
            give_up_at=now + _retry_for(),
        )
    transaction.on_commit(_wake)
    return event


def _retry_for() -> timedelta:
    return timedelta(seconds=settings.VOICEROOM_WEBHOOK_RETRY_FOR_S)


def _lock_stream(room_id: int) -> None:
    """Hold the room's Stream row until the transaction ends (made on its first event:
    an inserted row is locked by its insert)."""
    if Stream.objects.select_for_update().filter(room_id=room_id).exists():
        return
    _, created = Stream.objects.get_or_create(room_id=room_id)
    if not created:  # another transaction made it meanwhile
        Stream.objects.select_for_update().filter(room_id=room_id).exists()


def _wake() -> None:
    from webhooks import delivery

    delivery.wake()


def event_replay(*, event: Event) -> Event:
    """Send a failed (or delivered) event again, from now, with a new retry period.

    Delivery takes a room's pending events in the order they were stored, so the
    replayed event goes out before the room's newer pending events, which wait for it."""
    now = timezone.now()
    Event.objects.filter(pk=event.pk).update(
        status=Event.Status.PENDING,
        attempts=0,
        next_attempt_at=now,
        give_up_at=now + _retry_for(),
        lease_until=None,
        lease_owner="",
        last_error="",
        delivered_at=None,
    )
    transaction.on_commit(_wake)
    event.refresh_from_db()
    return event
