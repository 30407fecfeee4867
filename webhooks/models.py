"""The outbox: one row per event, written in the transaction of the change it describes."""

from __future__ import annotations

import uuid

from django.db import models


class Stream(models.Model):
    """One row per room, locked (SELECT ... FOR UPDATE) by every transaction that records
    an event of the room. Events of a room are then inserted, and committed, one
    transaction after another, so their ids are in commit order: the order delivery
    follows. Without it, a transaction could take id 10, another id 11 and commit first,
    and 11 would go out before 10 exists."""

    room_id = models.BigIntegerField(primary_key=True)

    def __str__(self) -> str:
        return f"event stream of room {self.room_id}"


class Event(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    # The public id (receivers deduplicate on it); the integer pk gives the order.
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    type = models.CharField(max_length=40)
    # Not a foreign key: the events of a deleted room must still go out.
    room_id = models.BigIntegerField()
    # The exact body POSTed, made once when stored: every attempt sends the same bytes.
    body = models.TextField()
    created_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    # A refusal after this marks the event failed (VOICEROOM_WEBHOOK_RETRY_FOR_S after it
    # was stored, or after a replay).
    give_up_at = models.DateTimeField()
    # A node sending the event holds it until then; a node that dies loses it at expiry.
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=80, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["status", "room_id", "id"], name="webhook_event_queue"),
            models.Index(fields=["status", "delivered_at"], name="webhook_event_done"),
        ]

    def __str__(self) -> str:
        return f"{self.type} #{self.pk} (room {self.room_id}, {self.status})"
