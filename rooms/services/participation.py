"""Participation: who is in the room now (connect, resume, disconnect, revocation)."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from accounts.models import User, credentials_epoch
from realtime import presence
from rooms import contract, events, selectors
from rooms.contract import CloseCode
from rooms.models import (
    Membership,
    Room,
)
from rooms.services._common import _end_presence, presence_remove_on_commit
from webhooks.services import record_event


@dataclass
class ConnectResult:
    close_code: int | None = None
    reason: str = ""
    session: presence.Session | None = None
    previous: presence.Session | None = None
    membership: Membership | None = None
    welcome: dict | None = None
    credentials_epoch: float = 0.0  # the user's, as checked: see participant_recheck

    @property
    def replaced_live_socket(self) -> bool:
        return self.previous is not None and self.previous.connected


def participant_connect(
    *,
    room_id: int,
    user_id: int | None,
    resume_session: str | None,
    node: str,
    channel: str,
    credentials_epoch: float | None = None,
    resume_token: str | None = None,
) -> ConnectResult:
    """Admit a socket to a room, or say which close code refuses it.

    A member with a live or resumable session keeps it (seat, mutes, voice sequence);
    a live older socket is replaced (the consumer closes it with 4012), but never by a
    resume token: `resume_token` is used up here, and only while its session is in the
    resume window. Every welcome carries a new resume token.
    `credentials_epoch`: the one the ticket or API token was issued under (None for a
    resume token, whose issue time is compared with the revocation time instead).
    """
    room = Room.objects.select_related("owner").filter(pk=room_id).first()
    if room is None:
        return ConnectResult(close_code=CloseCode.UNKNOWN_ROOM, reason="unknown room")
    if user_id is None:
        return ConnectResult(close_code=CloseCode.AUTH_FAILED, reason="authentication failed")
    membership = (
        Membership.objects.select_related("user").filter(room=room, user_id=user_id).first()
    )
    if membership is None or membership.banned:
        reason = "banned" if membership is not None else "not a member"
        return ConnectResult(close_code=CloseCode.FORBIDDEN, reason=reason)
    if not membership.user.is_active:
        return ConnectResult(close_code=CloseCode.AUTH_FAILED, reason="account disabled")
    epoch = membership.user.credentials_epoch
    if credentials_epoch is not None and credentials_epoch != epoch:
        return ConnectResult(close_code=CloseCode.AUTH_FAILED, reason="credentials revoked")
    # Before the `active` check: closing ended every membership, and the member should
    # read "room closed" (4011), not "not a member" (4003).
    if room.status != Room.Status.OPEN:
        return ConnectResult(close_code=CloseCode.ROOM_CLOSED, reason="room closed")
    if not membership.active:
        return ConnectResult(close_code=CloseCode.FORBIDDEN, reason="not a member")
    store = presence.store()
    existing = store.get(room.pk, user_id)
    if resume_session is not None:
        if existing is None or existing.session_id != resume_session:
            return ConnectResult(
                close_code=CloseCode.AUTH_FAILED, reason="resume window has passed"
            )
        if existing.token_issued_at < epoch:
            return ConnectResult(close_code=CloseCode.AUTH_FAILED, reason="credentials revoked")
    if existing is None and store.counts([room.pk])[room.pk] >= room.capacity:
        return ConnectResult(close_code=CloseCode.ROOM_FULL, reason="room full")
    try:
        attached = store.attach(
            room.pk, user_id, node=node, channel=channel, resume_token=resume_token
        )
    except presence.ResumeRefused:
        return ConnectResult(
            close_code=CloseCode.AUTH_FAILED, reason="resume token used or not redeemable"
        )
    participant = selectors.participant_dict(membership, attached.session)
    if attached.previous is None:
        events.participant_joined(room.pk, participant)
        record_event("participant.joined", room.pk, {"user_id": user_id})
    else:
        events.participant_updated(room.pk, participant)
    welcome = {
        "type": "welcome",
        "room": selectors.room_dict(room),
        "you": participant,
        "participants": selectors.participant_list(room_id=room.pk),
        "seats": selectors.seat_list(room=room),
        # Moderators get the queue of pending seat requests; others their own, if any.
        "seat_requests": selectors.seat_request_list(
            room_id=room.pk, user_id=None if membership.is_moderator else user_id
        ),
        "session": {
            "resume_token": attached.session.resume_token,
            "resume_window_s": int(settings.VOICEROOM_RESUME_WINDOW_S),
        },
        "resumed": resume_session is not None,
    }
    return ConnectResult(
        session=attached.session,
        previous=attached.previous,
        membership=membership,
        welcome=welcome,
        credentials_epoch=epoch,
    )


def participant_recheck(*, room_id: int, user_id: int, session_id: str, epoch: float) -> bool:
    """Are the credentials participant_connect accepted still good? Asked by the socket
    once it listens to its member group, so that a revocation committed in between is
    seen here and any later one reaches the socket (participants_revoke).

    If not, the revocation may have looked for this session before it existed: end it
    here (the socket closes itself with 4001).
    """
    row = User.objects.filter(pk=user_id).values_list("is_active", "credentials_revoked_at").first()
    if row is not None and row[0] and credentials_epoch(row[1]) == epoch:
        return True
    _participant_revoke(room_id=room_id, user_id=user_id, session_id=session_id)
    return False


def participants_revoke(*, user_id: int) -> int:
    """The user's credentials were revoked (sign-out, password change, deactivation):
    take them out of every room where they are a participant, connected or inside the
    resume window, through the leave path. Others see `participant.left`; their sockets
    close with 4001 on whichever node holds them. Returns how many rooms they left.
    """
    room_ids = Membership.objects.filter(user_id=user_id, active=True).values_list(
        "room_id", flat=True
    )
    return sum(
        _participant_revoke(room_id=room_id, user_id=user_id, session_id=None)
        for room_id in list(room_ids)
    )


@transaction.atomic
def _participant_revoke(*, room_id: int, user_id: int, session_id: str | None) -> bool:
    """End the user's session in the room (only `session_id`, when given). With no
    session id the socket is closed 4001 through its member group; with one, the socket
    asking (participant_recheck) closes itself."""
    session = presence.store().get(room_id, user_id)
    if session is None or session_id not in (None, session.session_id):
        return False
    room = Room.objects.select_for_update().filter(pk=room_id).first()
    membership = (
        Membership.objects.select_for_update()
        .select_related("user", "room")
        .filter(room_id=room_id, user_id=user_id, active=True)
        .first()
    )
    if room is None or membership is None:
        presence_remove_on_commit(room_id, user_id, session.session_id)
        events.participant_left(room_id, user_id, "left")
        record_event("participant.left", room_id, {"user_id": user_id, "reason": "left"})
        return False
    membership.room = room
    _end_presence(
        membership, reason="left", close_code=CloseCode.AUTH_FAILED if session_id is None else None
    )
    return True


def participant_disconnect(*, room_id: int, user_id: int, channel: str, seq: int) -> None:
    """A socket dropped without a clean leave: the participant enters its resume window."""
    session = presence.store().detach(room_id, user_id, channel, seq=seq)
    if session is None:
        return  # replaced by a newer socket, or already out of the room
    membership = selectors.membership_find(room_id=room_id, user_id=user_id)
    if membership is not None:
        events.participant_updated(room_id, selectors.participant_dict(membership, session))


@transaction.atomic
def participant_timeout(*, room_id: int, user_id: int, session_id: str) -> bool:
    """The resume window ran out: the participant leaves with reason `timeout`."""
    session = presence.store().get(room_id, user_id)
    if session is None or session.session_id != session_id or session.connected:
        return False
    room = Room.objects.select_for_update().filter(pk=room_id).first()
    membership = (
        Membership.objects.select_for_update()
        .select_related("user", "room")
        .filter(room_id=room_id, user_id=user_id)
        .first()
    )
    if room is None or membership is None:
        presence_remove_on_commit(room_id, user_id, session_id)
        return False
    membership.room = room
    _end_presence(membership, reason="timeout", close_code=None)
    return True


def participant_self_mute(
    *, room_id: int, user_id: int, session_id: str, muted: bool
) -> contract.Participant | None:
    session = presence.store().update(room_id, user_id, session_id, self_muted=muted)
    if session is None:
        return None
    membership = selectors.membership_find(room_id=room_id, user_id=user_id)
    if membership is None:  # the room or the user was deleted meanwhile
        return None
    participant = selectors.participant_dict(membership, session)
    events.participant_updated(room_id, participant)
    return participant


def participant_voice_seq(*, room_id: int, user_id: int, channel: str, seq: int) -> None:
    """Remember the voice sequence reached, so a resumed socket continues it."""
    session = presence.store().get(room_id, user_id)
    if session is not None and session.channel == channel:
        presence.store().update(room_id, user_id, session.session_id, seq=seq)


def participants_detached(*, sessions: list[presence.Session]) -> None:
    """Sessions of a dead node entered their resume window: tell their rooms."""
    for session in sessions:
        membership = selectors.membership_find(room_id=session.room_id, user_id=session.user_id)
        if membership is not None:
            events.participant_updated(
                session.room_id, selectors.participant_dict(membership, session)
            )


def participants_reattach(*, node: str, sockets: list[tuple[int, int, str, int]]) -> None:
    """Make presence agree with this node's live sockets again, after it may have lost
    them (Redis restarted empty, or other nodes declared this node dead while its Redis
    connection was down). `sockets`: (room, user, channel, voice seq) of each.

    Sockets put back are shown as connected; a socket whose membership ended meanwhile
    is closed 4003. Sessions whose socket dropped while Redis was unreachable enter the
    resume window, as any dropped socket does.
    """
    reattached, detached = presence.store().reattach(node, sockets)
    for session in reattached:
        membership = selectors.membership_find(room_id=session.room_id, user_id=session.user_id)
        if membership is None or not membership.active or membership.banned:
            presence.store().remove(session.room_id, session.user_id, session.session_id)
            events.member_close(session.room_id, session.user_id, CloseCode.FORBIDDEN)
            continue
        events.participant_updated(session.room_id, selectors.participant_dict(membership, session))
    participants_detached(sessions=detached)
