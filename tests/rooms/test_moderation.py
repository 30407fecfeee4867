"""Moderation and seat services beyond the basics of test_services.py: the events each
act sends (captured at the channel layer, after commit), mute all, the seat-request
queue, seat_count changes, the role rules of every act, and the seat race on MariaDB."""

from __future__ import annotations

import contextlib
import threading

import pytest
from django.db import connection

from realtime import presence
from rooms import events, policy, selectors, services
from rooms.models import Membership, ModerationAction, SeatRequest
from tests.factories import RoomFactory, UserFactory, operator
from voiceroom.errors import ApplicationError

pytestmark = pytest.mark.django_db

Action = ModerationAction.Action


def join(room, user=None):
    user = user or UserFactory()
    services.member_join(room=room, user=user)
    return user


def admin_of(room):
    user = join(room)
    services.member_set_role(room=room, actor=room.owner, user_id=user.pk, role="admin")
    return user


def online(room, *users):
    for user in users:
        presence.store().attach(room.pk, user.pk, node="n", channel=f"c{user.pk}")


def membership(room, user) -> Membership:
    return Membership.objects.get(room=room, user=user)


def audit(room, action):
    return list(ModerationAction.objects.filter(room=room, action=action))


@contextlib.contextmanager
def refused(code: str):
    with pytest.raises(ApplicationError) as caught:
        yield caught
    assert caught.value.code == code, caught.value.detail


class Sent:
    """What the services handed to the channel layer after commit: (group, message)."""

    def __init__(self, capture) -> None:
        self.all: list[tuple[str, dict]] = []
        self._capture = capture

    @contextlib.contextmanager
    def during(self):
        """Record what is sent by the commits of the block (and only those)."""
        self.all.clear()
        with self._capture(execute=True):
            yield self

    def to(self, group: str) -> list[dict]:
        return [m for g, m in self.all if g == group]

    def types(self, group: str) -> list[str]:
        return [m["type"] for m in self.to(group)]


@pytest.fixture
def sent(monkeypatch, django_capture_on_commit_callbacks):
    record = Sent(django_capture_on_commit_callbacks)

    async def capture(group, message):
        record.all.append((group, message))

    monkeypatch.setattr(events, "agroup_send", capture)
    return record


def room_of(room):
    return events.room_group(room.pk)


def member_of(room, user):
    return events.member_group(room.pk, user.pk)


# --- seats: take, and what changing seat_count does -----------------------------------------


def test_seat_take_refusals_locked_taken_invalid_and_no_free_seat():
    room = RoomFactory(seat_count=2)
    a, b, c = join(room), join(room), join(room)
    services.seat_lock(room=room, actor=room.owner, index=1, locked=True)

    with refused("seat_locked"):
        services.seat_take(room=room, user=a, index=1)
    assert services.seat_take(room=room, user=a) == 0  # the first free seat skips locked ones
    with refused("seat_taken"):
        services.seat_take(room=room, user=b, index=0)
    with refused("no_free_seat"):
        services.seat_take(room=room, user=b)
    with refused("invalid_seat"):
        services.seat_take(room=room, user=c, index=2)
    assert [membership(room, u).seat for u in (a, b, c)] == [0, None, None]


def test_seat_take_in_a_room_without_seats_is_invalid():
    room = RoomFactory(seat_count=0)
    with refused("invalid_seat"):
        services.seat_take(room=room, user=join(room))


def test_shrinking_seat_count_keeps_who_it_can_and_frees_the_rest_with_seat_updated(sent):
    room = RoomFactory(seat_count=4)
    low, high = join(room), join(room)
    online(room, low, high)
    services.seat_take(room=room, user=low, index=1)
    services.seat_take(room=room, user=high, index=3)
    services.seat_mute(room=room, actor=room.owner, index=3, muted=True)
    with sent.during():
        services.room_update(room=room, actor=room.owner, seat_count=2)

    assert (membership(room, low).seat, membership(room, high).seat) == (1, None)
    messages = sent.to(room_of(room))
    assert [m["type"] for m in messages] == ["room.updated", "seat.updated", "participant.updated"]
    assert messages[0]["room"]["seat_count"] == 2
    assert messages[1]["seat"] == {"index": 3, "user_id": None, "locked": False, "muted": False}
    assert messages[2]["participant"]["user_id"] == high.pk
    assert messages[2]["participant"]["seat"] is None

    # Growing again brings the seats back empty and open, each announced.
    with sent.during():
        services.room_update(room=room, actor=room.owner, seat_count=4)
    messages = sent.to(room_of(room))
    assert [m["type"] for m in messages] == ["room.updated", "seat.updated", "seat.updated"]
    assert [m["seat"] for m in messages[1:]] == [
        {"index": 2, "user_id": None, "locked": False, "muted": False},
        {"index": 3, "user_id": None, "locked": False, "muted": False},
    ]
    assert [s["index"] for s in selectors.seat_list(room=room)] == [0, 1, 2, 3]


def test_every_change_of_a_rooms_fields_sends_room_updated(sent):
    room = RoomFactory()
    for change in ({"name": "n"}, {"topic": "t"}, {"capacity": 9}, {"password": "pw"}):
        with sent.during():
            services.room_update(room=room, actor=room.owner, **change)
        assert sent.types(room_of(room)) == ["room.updated"], change
    with sent.during():
        services.room_close(room=room, actor=room.owner)
    assert sent.types(room_of(room)) == ["room.updated", "room.closed"]
    with sent.during():
        services.room_open(room=room, actor=room.owner)
    assert sent.types(room_of(room)) == ["room.updated"]
    assert sent.to(room_of(room))[0]["room"]["status"] == "open"


@pytest.mark.parametrize("act", ["kick", "ban"])
def test_a_kicked_or_banned_member_frees_their_seat_with_seat_updated(sent, act):
    room = RoomFactory(seat_count=3)
    user = join(room)
    online(room, user)
    services.seat_take(room=room, user=user, index=2)
    with sent.during():
        getattr(services, f"member_{act}")(room=room, actor=room.owner, user_id=user.pk)

    code = {"kick": 4010, "ban": 4003}[act]
    assert sent.to(member_of(room, user)) == [
        {"type": "member.close", "code": code, "reason": f"{act}ed" if act == "kick" else "banned"}
    ]
    assert sent.types(room_of(room)) == ["participant.left", "seat.updated"]
    assert sent.to(room_of(room))[1]["seat"]["user_id"] is None
    assert membership(room, user).seat is None


def test_seat_lock_takes_the_holder_off_and_a_locked_seat_cannot_be_taken_or_requested(sent):
    room = RoomFactory(seat_count=2)
    user = join(room)
    online(room, user)
    services.seat_take(room=room, user=user, index=0)
    with sent.during():
        services.seat_lock(room=room, actor=room.owner, index=0, locked=True)

    assert sent.types(room_of(room)) == ["participant.updated", "seat.updated"]
    assert sent.to(room_of(room))[1]["seat"] == {
        "index": 0,
        "user_id": None,
        "locked": True,
        "muted": False,
    }
    with refused("seat_locked"):
        services.seat_take(room=room, user=user, index=0)
    with refused("seat_locked"):
        services.seat_request_create(room=room, user=user, index=0)
    assert [a.detail for a in audit(room, Action.SEAT_LOCK)] == [{"index": 0}]


# --- mute all -------------------------------------------------------------------------------


def test_mute_all_mutes_everyone_but_moderators_with_one_audit_row(sent):
    room = RoomFactory()
    admin, a, b, away = admin_of(room), join(room), join(room), join(room)
    online(room, room.owner, admin, a, b)  # `away` has joined but has no socket
    with sent.during():
        members = services.room_mute_all(room=room, actor=admin, muted=True)

    assert {m.user_id for m in members} == {a.pk, b.pk, away.pk}
    assert all(m.muted for m in members)
    assert [membership(room, u).muted for u in (room.owner, admin, a, b, away)] == [
        False,
        False,
        True,
        True,
        True,
    ]
    updates = sent.to(room_of(room))
    assert [m["type"] for m in updates] == ["participant.updated"] * 2
    assert {m["participant"]["user_id"] for m in updates} == {a.pk, b.pk}
    assert all(m["participant"]["muted"] for m in updates)
    (row,) = audit(room, Action.MUTE_ALL)
    assert row.actor == admin and sorted(row.detail["user_ids"]) == sorted([a.pk, b.pk, away.pk])

    # Already muted: nobody changes, nobody is told, the act is still on record.
    with sent.during():
        services.room_mute_all(room=room, actor=room.owner, muted=True)
    assert sent.to(room_of(room)) == []
    assert len(audit(room, Action.MUTE_ALL)) == 2

    services.member_mute(room=room, actor=room.owner, user_id=a.pk, muted=False)
    with sent.during():
        services.room_mute_all(room=room, actor=room.owner, muted=False)
    assert {m["participant"]["user_id"] for m in sent.to(room_of(room))} == {b.pk}
    assert not any(membership(room, u).muted for u in (a, b, away))
    (row,) = audit(room, Action.UNMUTE_ALL)
    assert sorted(row.detail["user_ids"]) == sorted([b.pk, away.pk])


def test_mute_all_is_for_owner_admin_and_staff():
    room = RoomFactory()
    member, other = join(room), join(room)
    staff = operator()
    with refused("forbidden"):
        services.room_mute_all(room=room, actor=member, muted=True)
    with refused("forbidden"):
        services.room_mute_all(room=room, actor=UserFactory(), muted=True)
    assert not membership(room, other).muted
    assert not audit(room, Action.MUTE_ALL)

    services.room_mute_all(room=room, actor=staff, muted=True)
    assert membership(room, member).muted and membership(room, other).muted


# --- seat requests --------------------------------------------------------------------------


def test_seat_request_reaches_the_moderators_and_the_requester_only(sent):
    room = RoomFactory(seat_count=4)
    admin, listener, other = admin_of(room), join(room), join(room)

    with sent.during():
        created = services.seat_request_create(room=room, user=listener, index=2)

    assert SeatRequest.objects.get().user == listener
    expected = selectors.seat_request_dict(created)
    assert expected["user_id"] == listener.pk and expected["index"] == 2
    assert expected["ts"].endswith("Z")
    for user in (room.owner, admin, listener):
        assert sent.to(member_of(room, user)) == [{"type": "seat.requested", "request": expected}]
    assert sent.to(member_of(room, other)) == []
    assert sent.to(room_of(room)) == []
    assert selectors.seat_request_list(room_id=room.pk) == [expected]


def test_seat_request_refusals():
    room = RoomFactory(seat_count=2)
    user, seated = join(room), join(room)
    services.seat_take(room=room, user=seated, index=0)

    with refused("not_a_member"):
        services.seat_request_create(room=room, user=UserFactory())
    with refused("invalid_seat"):
        services.seat_request_create(room=room, user=user, index=2)
    with refused("already_seated"):
        services.seat_request_create(room=room, user=seated)
    services.seat_request_create(room=room, user=user)
    with refused("seat_request_pending"):
        services.seat_request_create(room=room, user=user, index=1)
    seatless = RoomFactory(seat_count=0)
    with refused("invalid_seat"):
        services.seat_request_create(room=seatless, user=join(seatless, user))
    assert SeatRequest.objects.count() == 1


def test_accept_seats_the_requester_with_seat_take_rules_and_tells_both(sent):
    room = RoomFactory(seat_count=3)
    admin, listener, bystander = admin_of(room), join(room), join(room)
    online(room, listener, bystander)
    services.seat_request_create(room=room, user=listener, index=1)
    with sent.during():
        services.seat_request_accept(room=room, actor=admin, user_id=listener.pk)

    assert membership(room, listener).seat == 1
    assert not SeatRequest.objects.exists()
    resolved = {
        "type": "seat.request.resolved",
        "user_id": listener.pk,
        "accepted": True,
        "index": 1,
    }
    for user in (room.owner, admin, listener):
        assert resolved in sent.to(member_of(room, user))
    assert sent.to(member_of(room, bystander)) == []
    assert sent.types(room_of(room)) == ["seat.updated", "participant.updated"]
    assert sent.to(room_of(room))[0]["seat"]["user_id"] == listener.pk
    (row,) = audit(room, Action.SEAT_REQUEST_ACCEPT)
    assert (row.actor, row.target, row.detail) == (admin, listener, {"index": 1})


def test_accept_onto_a_taken_seat_fails_and_the_request_stays_pending():
    room = RoomFactory(seat_count=2)
    listener, quick = join(room), join(room)
    services.seat_request_create(room=room, user=listener, index=0)
    services.seat_take(room=room, user=quick, index=0)

    with refused("seat_taken"):
        services.seat_request_accept(room=room, actor=room.owner, user_id=listener.pk)
    assert SeatRequest.objects.filter(user=listener).exists()
    assert not audit(room, Action.SEAT_REQUEST_ACCEPT)

    # The moderator may choose another seat.
    services.seat_request_accept(room=room, actor=room.owner, user_id=listener.pk, index=1)
    assert membership(room, listener).seat == 1


def test_refuse_tells_both_and_is_audited(sent):
    room = RoomFactory(seat_count=2)
    listener = join(room)
    services.seat_request_create(room=room, user=listener)
    with sent.during():
        services.seat_request_refuse(room=room, actor=room.owner, user_id=listener.pk)

    resolved = {"type": "seat.request.resolved", "user_id": listener.pk, "accepted": False}
    assert sent.to(member_of(room, listener)) == [resolved]
    assert sent.to(member_of(room, room.owner)) == [resolved]
    assert membership(room, listener).seat is None and not SeatRequest.objects.exists()
    (row,) = audit(room, Action.SEAT_REQUEST_REFUSE)
    assert (row.actor, row.target) == (room.owner, listener)
    with refused("no_seat_request"):
        services.seat_request_refuse(room=room, actor=room.owner, user_id=listener.pk)
    with refused("no_seat_request"):
        services.seat_request_accept(room=room, actor=room.owner, user_id=listener.pk)


def test_only_moderators_accept_or_refuse_and_list():
    room = RoomFactory(seat_count=2)
    listener, member = join(room), join(room)
    services.seat_request_create(room=room, user=listener)
    for call in (services.seat_request_accept, services.seat_request_refuse):
        with refused("forbidden"):
            call(room=room, actor=member, user_id=listener.pk)
    with refused("forbidden"):
        selectors.seat_request_list_visible(room=room, viewer=member)
    assert len(selectors.seat_request_list_visible(room=room, viewer=room.owner)) == 1
    staff = operator()
    services.seat_request_accept(room=room, actor=staff, user_id=listener.pk)
    assert membership(room, listener).seat == 0


@pytest.mark.parametrize(
    "how,reason",
    [
        (lambda room, user: services.seat_request_cancel(room=room, user=user), "cancelled"),
        (lambda room, user: services.member_leave(room=room, user=user), "left"),
        (
            lambda room, user: services.member_kick(room=room, actor=room.owner, user_id=user.pk),
            "kicked",
        ),
        (
            lambda room, user: services.member_ban(room=room, actor=room.owner, user_id=user.pk),
            "banned",
        ),
        (lambda room, user: services.seat_take(room=room, user=user), "seated"),
        (
            lambda room, user: services.room_update(room=room, actor=room.owner, seat_count=0),
            "no_seats",
        ),
    ],
    ids=["cancel", "leave", "kick", "ban", "seat_take", "no_seats"],
)
def test_a_pending_request_is_cancelled_when_it_no_longer_makes_sense(sent, how, reason):
    room = RoomFactory(seat_count=2)
    listener = join(room)
    services.seat_request_create(room=room, user=listener)
    with sent.during():
        how(room, listener)

    assert not SeatRequest.objects.exists()
    cancelled = {"type": "seat.request.cancelled", "user_id": listener.pk, "reason": reason}
    assert cancelled in sent.to(member_of(room, room.owner))


def test_a_pending_request_is_cancelled_when_the_resume_window_runs_out(sent):
    room = RoomFactory(seat_count=2)
    listener = join(room)
    online(room, listener)
    services.seat_request_create(room=room, user=listener)
    session = presence.store().detach(room.pk, listener.pk, f"c{listener.pk}", seq=0)
    with sent.during():
        assert services.participant_timeout(
            room_id=room.pk, user_id=listener.pk, session_id=session.session_id
        )

    assert not SeatRequest.objects.exists()
    assert {"type": "seat.request.cancelled", "user_id": listener.pk, "reason": "timeout"} in (
        sent.to(member_of(room, room.owner))
    )


def test_closing_the_room_drops_its_requests():
    room = RoomFactory(seat_count=2)
    services.seat_request_create(room=room, user=join(room))
    services.room_close(room=room, actor=room.owner)
    assert not SeatRequest.objects.exists()


def test_welcome_lists_the_queue_for_moderators_and_their_own_request_for_others():
    room = RoomFactory(seat_count=2)
    listener, other = join(room), join(room)
    services.seat_request_create(room=room, user=listener, index=1)

    def welcome(user):
        return services.participant_connect(
            room_id=room.pk, user_id=user.pk, resume_session=None, node="n", channel=f"c{user.pk}"
        ).welcome

    assert [r["user_id"] for r in welcome(room.owner)["seat_requests"]] == [listener.pk]
    assert [r["index"] for r in welcome(listener)["seat_requests"]] == [1]
    assert welcome(other)["seat_requests"] == []


# --- role rules, every act ------------------------------------------------------------------

ACTS = {
    "mute": lambda room, actor, target: services.member_mute(
        room=room, actor=actor, user_id=target.pk, muted=True
    ),
    "kick": lambda room, actor, target: services.member_kick(
        room=room, actor=actor, user_id=target.pk
    ),
    "ban": lambda room, actor, target: services.member_ban(
        room=room, actor=actor, user_id=target.pk
    ),
    "unban": lambda room, actor, target: services.member_unban(
        room=room, actor=actor, user_id=target.pk
    ),
    "seat.remove": lambda room, actor, target: services.seat_remove(
        room=room, actor=actor, user_id=target.pk
    ),
    "role": lambda room, actor, target: services.member_set_role(
        room=room, actor=actor, user_id=target.pk, role="member" if target.is_admin else "admin"
    ),
}

# Who may act on whom: owner and staff on anyone but the owner; an admin on plain members
# only; a plain member or an outsider on nobody. Roles: owner and staff only.
ALLOWED = {
    ("owner", "admin"),
    ("owner", "member"),
    ("staff", "admin"),
    ("staff", "member"),
    ("admin", "member"),
}
ROLE_ALLOWED = {("owner", "admin"), ("owner", "member"), ("staff", "admin"), ("staff", "member")}


@pytest.mark.parametrize("act", list(ACTS))
@pytest.mark.parametrize("actor_kind", ["owner", "staff", "admin", "member", "outsider"])
@pytest.mark.parametrize("target_kind", ["owner", "admin", "member"])
def test_role_rules_for_every_act(act, actor_kind, target_kind):
    room = RoomFactory(seat_count=4)
    people = {
        "owner": room.owner,
        "staff": operator(),
        "admin": admin_of(room),
        "member": join(room),
        "outsider": UserFactory(),
    }
    target = admin_of(room) if target_kind == "admin" else people[target_kind]
    if target_kind == "member":
        target = join(room)
    target.is_admin = target_kind == "admin"
    if act == "unban":
        services.member_ban(room=room, actor=policy.SYSTEM, user_id=target.pk)
    else:
        services.seat_take(room=room, user=target, index=3)
    before = membership(room, target)
    actor = people[actor_kind]
    allowed = (actor_kind, target_kind) in (ROLE_ALLOWED if act == "role" else ALLOWED)
    audited = ModerationAction.objects.count()

    if allowed:
        ACTS[act](room, actor, target)
        assert ModerationAction.objects.count() == audited + 1
        assert ModerationAction.objects.first().actor == actor
    else:
        with refused("forbidden"):
            ACTS[act](room, actor, target)
        assert ModerationAction.objects.count() == audited
        after = membership(room, target)
        fields = ("active", "muted", "banned", "seat", "role")
        assert [getattr(after, f) for f in fields] == [getattr(before, f) for f in fields]


@pytest.mark.parametrize("actor_kind", ["admin", "member", "outsider"])
def test_only_owner_and_staff_close_open_or_change_roles(actor_kind):
    room = RoomFactory()
    member = join(room)
    actor = {"admin": admin_of, "member": join}.get(actor_kind, lambda r: UserFactory())(room)
    with refused("forbidden"):
        services.room_close(room=room, actor=actor)
    with refused("forbidden"):
        services.member_set_role(room=room, actor=actor, user_id=member.pk, role="admin")
    room.refresh_from_db()
    assert room.status == "open" and membership(room, member).role == "member"


# --- the seat race, with real concurrency on MariaDB ------------------------------------------


def _race(room, users, index):
    """Every user calls seat_take at the same moment, each in its own thread and connection."""
    start = threading.Barrier(len(users))
    outcomes: list[object] = []
    lock = threading.Lock()

    def attempt(user) -> None:
        try:
            start.wait(timeout=30)
            try:
                result: object = services.seat_take(room=room, user=user, index=index)
            except ApplicationError as exc:
                result = exc.code
            with lock:
                outcomes.append(result)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(u,)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


@pytest.mark.mysql
@pytest.mark.django_db(transaction=True)
def test_racing_for_one_seat_exactly_one_wins_on_mariadb():
    room = RoomFactory(seat_count=4)
    users = [join(room) for _ in range(12)]

    for index in (2, 0):  # twice, the second time with everyone unseated again
        outcomes = _race(room, users, index)
        assert len(outcomes) == 12
        assert outcomes.count(index) == 1, outcomes
        assert outcomes.count("seat_taken") == 11, outcomes
        assert Membership.objects.filter(room=room, seat=index).count() == 1
        Membership.objects.filter(room=room).update(seat=None)


@pytest.mark.mysql
@pytest.mark.django_db(transaction=True)
def test_racing_for_any_seat_fills_each_seat_once_on_mariadb():
    room = RoomFactory(seat_count=3)
    users = [join(room) for _ in range(10)]

    outcomes = _race(room, users, None)

    assert sorted(o for o in outcomes if isinstance(o, int)) == [0, 1, 2]
    assert outcomes.count("no_free_seat") == 7
    seated = Membership.objects.filter(room=room, seat__isnull=False)
    assert sorted(seated.values_list("seat", flat=True)) == [0, 1, 2]
