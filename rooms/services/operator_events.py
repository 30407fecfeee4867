"""Operator events (report.created, recording.started, recording.stopped).

The one place these events leave the report and recording services: each goes to the
webhook outbox (`webhooks.services.record_event`), in the transaction of the change it
describes, like every other contract event.
"""

from __future__ import annotations

from typing import Any

from rooms.models import Room
from webhooks.services import record_event


def operator_event(kind: str, *, room: Room, data: dict[str, Any]) -> None:
    """Emit `kind` about `room`; call it inside the transaction of the change."""
    record_event(kind, room.pk, data)
