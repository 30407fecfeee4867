"""The relay's frame tap: where evidence and recording see each relayed frame, once.

`Relay.voice_in` calls the tap for every frame it relays (after the speak gate, before
fan-out). Evidence always keeps the speaker's last 30 s (realtime/evidence.py); a room
being recorded also queues the frame for the writer thread (realtime/recording.py).
Whisper voice goes to evidence only: a recording holds the room's voice.
"""

from __future__ import annotations

from realtime.evidence import Evidence
from realtime.recording import Recordings


class FrameTap:
    __slots__ = ("evidence", "recordings")

    def __init__(self) -> None:
        self.evidence = Evidence()
        self.recordings = Recordings()

    def __call__(
        self, room_id: int, user_id: int, payload: bytes, now: float, target: int | None
    ) -> None:
        self.evidence.frame(room_id, user_id, payload, now)
        if target is None:
            rec = self.recordings.active.get(room_id)
            if rec is not None:
                rec.take(user_id, payload, now)
