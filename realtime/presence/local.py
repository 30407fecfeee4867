"""`LocalStore`: presence in this process's memory, for a single node (REDIS_URL unset)."""

from __future__ import annotations

import dataclasses
import threading
import time

from realtime.presence.store import (
    AttachResult,
    ResumeRefused,
    Session,
    _carry,
    _redeemable,
    _window,
)


class LocalStore:
    """In-process presence for a single node (REDIS_URL unset)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rooms: dict[int, dict[int, Session]] = {}
        self._tokens: dict[str, tuple[int, int, str]] = {}

    def attach(self, room_id, user_id, *, node, channel, resume_token=None):
        with self._lock:
            previous = self._rooms.get(room_id, {}).get(user_id)
            if resume_token is not None and not _redeemable(previous, resume_token, time.time()):
                raise ResumeRefused
            session = _carry(previous, room_id, user_id, node, channel)
            if previous is not None:
                self._tokens.pop(previous.resume_token, None)
            self._rooms.setdefault(room_id, {})[user_id] = session
            self._tokens[session.resume_token] = (room_id, user_id, session.session_id)
            return AttachResult(session=dataclasses.replace(session), previous=previous)

    def detach(self, room_id, user_id, channel, *, seq):
        with self._lock:
            session = self._rooms.get(room_id, {}).get(user_id)
            if session is None or session.channel != channel or not session.connected:
                return None
            session.connected = False
            session.deadline = time.time() + _window()
            session.seq = seq
            return dataclasses.replace(session)

    def remove(self, room_id, user_id, session_id=None):
        with self._lock:
            room = self._rooms.get(room_id, {})
            session = room.get(user_id)
            if session is None or (session_id is not None and session.session_id != session_id):
                return None
            del room[user_id]
            if not room:
                self._rooms.pop(room_id, None)
            self._tokens.pop(session.resume_token, None)
            return session

    def get(self, room_id, user_id):
        with self._lock:
            session = self._rooms.get(room_id, {}).get(user_id)
            return dataclasses.replace(session) if session else None

    def sessions(self, room_id):
        with self._lock:
            return [dataclasses.replace(s) for s in self._rooms.get(room_id, {}).values()]

    def sessions_of_rooms(self, room_ids):
        with self._lock:
            return {
                rid: [dataclasses.replace(s) for s in self._rooms.get(rid, {}).values()]
                for rid in room_ids
            }

    def counts(self, room_ids):
        with self._lock:
            return {rid: len(self._rooms.get(rid, {})) for rid in room_ids}

    def update(self, room_id, user_id, session_id, **fields):
        with self._lock:
            session = self._rooms.get(room_id, {}).get(user_id)
            if session is None or session.session_id != session_id:
                return None
            for key, value in fields.items():
                setattr(session, key, value)
            return dataclasses.replace(session)

    def resolve_resume_token(self, token):
        with self._lock:
            found = self._tokens.get(token)
            if found is None:
                return None
            room_id, user_id, session_id = found
            session = self._rooms.get(room_id, {}).get(user_id)
            if session is None or session.session_id != session_id:
                return None
            return found if _redeemable(session, token, time.time()) else None

    def pop_expired(self, now):
        expired = []
        with self._lock:
            for room_id, room in list(self._rooms.items()):
                for user_id, session in list(room.items()):
                    if (
                        not session.connected
                        and session.deadline is not None
                        and session.deadline <= now
                    ):
                        expired.append((room_id, user_id, session.session_id))
        return expired

    def heartbeat(self, node, now):
        return False  # this process's memory cannot be lost while it runs

    def claim_dead_nodes(self, now, dead_after):
        return []

    def detach_node(self, node):
        return []

    def defer(self, room_id, user_id, session_id, until):
        pass  # pop_expired does not consume: a failed timeout is found again next round

    def reattach(self, node, sockets):
        return [], []

    def keep_only(self, live):
        return {}

    def clear(self):
        with self._lock:
            self._rooms.clear()
            self._tokens.clear()
