"""Presence's interface: the Session, the Store protocol every store implements, and the
rules both stores share (a session's identity carried across sockets, its resume token).

A *session* is one stay of a user in a room: it starts when a socket connects without a
live session, survives disconnects for `resume_window_s`, and ends on a clean leave, a
kick, a ban, or when the window runs out. Its resume token is unguessable, bound to
(room, user, session), and single use: every attach (a fresh socket, a resume, a socket
that takes over) issues a new one and kills the one before, and a token is redeemed only
while its session is in the resume window (never to take over a connected socket). So a
token that leaked (a log, a shoulder) is worth nothing once its owner used or replaced it.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
import uuid
from typing import Protocol

from django.conf import settings


@dataclasses.dataclass
class Session:
    room_id: int
    user_id: int
    session_id: str
    resume_token: str
    node: str
    channel: str
    connected: bool = True
    self_muted: bool = False
    deadline: float | None = None  # when the resume window closes (epoch seconds)
    seq: int = 0  # voice sequence reached, carried across a resume
    # True when `seq` is only the last periodic save (the socket was replaced while live,
    # or its node died): the next socket then jumps ahead by SEQ_GAP so the sequence
    # never goes backwards.
    seq_stale: bool = False
    # time.time() when `resume_token` was issued (each attach issues a new one): the
    # revocation checks refuse a token issued before the user's logout or password
    # change. 0.0 for a session written by a node that predates the field.
    token_issued_at: float = 0.0

    def dumps(self) -> str:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"))

    @classmethod
    def loads(cls, raw: str | bytes) -> Session:
        return cls(**json.loads(raw))


class ResumeRefused(Exception):
    """A resume token that cannot be redeemed: not its session's latest token (used, or
    superseded by a newer socket), its session connected right now, or its window closed."""


def _redeemable(session: Session | None, token: str, now: float) -> bool:
    return (
        session is not None
        and secrets.compare_digest(session.resume_token, token)
        and not session.connected
        and session.deadline is not None
        and session.deadline > now
    )


@dataclasses.dataclass
class AttachResult:
    session: Session
    previous: Session | None  # the session replaced or resumed, if any


class Store(Protocol):
    def attach(
        self,
        room_id: int,
        user_id: int,
        *,
        node: str,
        channel: str,
        resume_token: str | None = None,
    ) -> AttachResult:
        """Attach a socket to the user's session (a new one if none), with a new resume
        token. With `resume_token`, redeem it first, atomically: raises ResumeRefused
        unless it is the session's latest token and the session is in its window."""
        ...

    def detach(self, room_id: int, user_id: int, channel: str, *, seq: int) -> Session | None: ...
    def remove(
        self, room_id: int, user_id: int, session_id: str | None = None
    ) -> Session | None: ...
    def get(self, room_id: int, user_id: int) -> Session | None: ...
    def sessions(self, room_id: int) -> list[Session]: ...
    def sessions_of_rooms(self, room_ids: list[int]) -> dict[int, list[Session]]:
        """`sessions` of several rooms in one read (one Redis round trip): every room asked
        for is a key, with [] when nobody is in it."""
        ...

    def counts(self, room_ids: list[int]) -> dict[int, int]: ...
    def update(self, room_id: int, user_id: int, session_id: str, **fields) -> Session | None: ...
    def resolve_resume_token(self, token: str) -> tuple[int, int, str] | None:
        """(room, user, session) of a token that is redeemable now, else None (a lookup:
        `attach` is where the token is used up)."""
        ...

    def pop_expired(self, now: float) -> list[tuple[int, int, str]]: ...
    def heartbeat(self, node: str, now: float) -> bool: ...
    def claim_dead_nodes(self, now: float, dead_after: float) -> list[str]: ...
    def detach_node(self, node: str) -> list[Session]: ...
    def defer(self, room_id: int, user_id: int, session_id: str, until: float) -> None: ...
    def reattach(
        self, node: str, sockets: list[tuple[int, int, str, int]]
    ) -> tuple[list[Session], list[Session]]: ...
    def keep_only(self, live: set[str]) -> dict[str, Session]: ...
    def clear(self) -> None: ...


def _window() -> float:
    return float(settings.VOICEROOM_RESUME_WINDOW_S)


def _new_token() -> str:
    return secrets.token_urlsafe(32)


def _new_session(room_id: int, user_id: int, node: str, channel: str) -> Session:
    return Session(
        room_id=room_id,
        user_id=user_id,
        session_id=uuid.uuid4().hex,
        resume_token=_new_token(),
        token_issued_at=time.time(),
        node=node,
        channel=channel,
    )


SEQ_GAP = 1000  # more frames than a socket may relay between two periodic saves


def _carry(
    previous: Session | None, room_id: int, user_id: int, node: str, channel: str
) -> Session:
    """The session a new socket gets: the previous one's identity and state, or a fresh
    one; either way with a resume token never handed out before."""
    if previous is None:
        return _new_session(room_id, user_id, node, channel)
    seq = previous.seq
    if previous.connected or previous.seq_stale:
        seq += SEQ_GAP
    return dataclasses.replace(
        previous,
        resume_token=_new_token(),
        token_issued_at=time.time(),
        node=node,
        channel=channel,
        connected=True,
        deadline=None,
        seq=seq & 0xFFFFFFFF,
        seq_stale=False,
    )
