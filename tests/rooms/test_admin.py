"""The operators' admin: lists with live counts, and actions that go through the services."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse

from accounts.models import User
from realtime import presence
from rooms import selectors, services
from rooms.models import Membership, ModerationAction, Room

pytestmark = pytest.mark.django_db

Action = ModerationAction.Action
ROOMS_URL = reverse("admin:rooms_room_changelist")
MEMBERS_URL = reverse("admin:rooms_membership_changelist")
AUDIT_URL = reverse("admin:rooms_moderationaction_changelist")


def make_user(username: str) -> User:
    return User.objects.create_user(
        username=username, password="pw-long-enough-1", display_name=username.title()
    )


def connect(room: Room, user: User) -> None:
    """Make the user count as online in the room, as a socket would."""
    presence.store().attach(room.pk, user.pk, node="test-node", channel=f"c{user.pk}")


@pytest.fixture
def owner():
    return make_user("olga")


@pytest.fixture
def alice():
    return make_user("alice")


@pytest.fixture
def bob():
    return make_user("bob")


@pytest.fixture
def room(owner, alice, bob):
    room = services.room_create(owner=owner, name="Night owls", topic="jazz and insomnia")
    services.member_join(room=room, user=alice)
    services.member_join(room=room, user=bob)
    return room


def names(response) -> set[str]:
    return {room.name for room in response.context["cl"].result_list}


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def audit(room: Room, action: str) -> list[ModerationAction]:
    return list(ModerationAction.objects.filter(room=room, action=action))


# --- rooms changelist --------------------------------------------------------------------


def test_room_changelist_shows_members_and_online_counts(admin_client, room, owner, alice):
    quiet = services.room_create(owner=owner, name="Quiet room")
    connect(room, owner)
    connect(room, alice)

    response = admin_client.get(ROOMS_URL)

    assert response.status_code == 200
    html = response.content.decode()
    rows = {r.name: r for r in response.context["cl"].result_list}
    assert set(rows) == {"Night owls", "Quiet room"}
    assert rows["Night owls"].member_count == 3  # owner, alice, bob: all active
    assert rows["Night owls"].admin_online_count == 2
    assert rows["Quiet room"].member_count == 1
    assert rows["Quiet room"].admin_online_count == 0
    assert '<td class="field-online_count">2</td>' in html
    assert '<td class="field-member_count">3</td>' in html
    assert quiet.pk in {r.pk for r in rows.values()}


def test_online_counts_looked_up_once_per_page(admin_client, owner, monkeypatch):
    for i in range(5):
        services.room_create(owner=owner, name=f"room {i}")
    calls: list[list[int]] = []
    real = selectors.online_counts

    def counting(*, room_ids):
        calls.append(list(room_ids))
        return real(room_ids=room_ids)

    def per_row(**kwargs):
        raise AssertionError("online_count called per row")

    monkeypatch.setattr(selectors, "online_counts", counting)
    monkeypatch.setattr(selectors, "online_count", per_row)

    response = admin_client.get(ROOMS_URL)

    assert response.status_code == 200
    assert len(calls) == 1
    assert len(calls[0]) == 5


def test_room_changelist_still_loads_when_presence_fails(admin_client, room, monkeypatch):
    def down(**kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(selectors, "online_counts", down)
    response = admin_client.get(ROOMS_URL)
    assert response.status_code == 200
    assert '<td class="field-online_count">?</td>' in response.content.decode()


def test_room_search_by_name_topic_and_owner(admin_client, room, alice):
    services.room_create(owner=alice, name="Morning coffee", topic="espresso")

    assert names(admin_client.get(ROOMS_URL, {"q": "owls"})) == {"Night owls"}
    assert names(admin_client.get(ROOMS_URL, {"q": "insomnia"})) == {"Night owls"}
    assert names(admin_client.get(ROOMS_URL, {"q": "alice"})) == {"Morning coffee"}
    assert names(admin_client.get(ROOMS_URL, {"q": "olga"})) == {"Night owls"}


def test_room_filters_status_private_created(admin_client, room, owner):
    closed = services.room_create(owner=owner, name="Closed room")
    services.room_close(room=closed, actor=closed.owner)
    services.room_create(owner=owner, name="Secret room", password="hunter22")

    assert names(admin_client.get(ROOMS_URL, {"status__exact": "closed"})) == {"Closed room"}
    assert names(admin_client.get(ROOMS_URL, {"status__exact": "open"})) == {
        "Night owls",
        "Secret room",
    }
    assert names(admin_client.get(ROOMS_URL, {"private": "yes"})) == {"Secret room"}
    assert "Secret room" not in names(admin_client.get(ROOMS_URL, {"private": "no"}))

    # The parameters the "Created" filter's links carry (aware datetimes, as with USE_TZ).
    day = room.created_at.replace(hour=0, minute=0, second=0, microsecond=0)
    response = admin_client.get(
        ROOMS_URL,
        {"created_at__gte": str(day), "created_at__lt": str(day + timedelta(days=1))},
    )
    assert len(names(response)) == 3
    response = admin_client.get(ROOMS_URL, {"created_at__lt": "2000-01-01 00:00:00+00:00"})
    assert names(response) == set()


# --- room actions ----------------------------------------------------------------------------


def test_close_and_open_actions_go_through_services(
    admin_client, admin_user, room, alice, django_capture_on_commit_callbacks
):
    connect(room, alice)
    with django_capture_on_commit_callbacks(execute=True):  # presence clears after commit
        response = admin_client.post(
            ROOMS_URL, {"action": "close_rooms", "_selected_action": [room.pk]}, follow=True
        )
    assert response.status_code == 200
    assert "Closed 1 room(s)." in messages_of(response)
    room.refresh_from_db()
    assert room.status == Room.Status.CLOSED
    # What room_close does beyond the status: members out, presence cleared, audit row.
    assert not Membership.objects.filter(room=room, active=True).exists()
    assert selectors.online_count(room_id=room.pk) == 0
    [entry] = audit(room, Action.ROOM_CLOSE)
    assert entry.actor == admin_user

    response = admin_client.post(
        ROOMS_URL, {"action": "open_rooms", "_selected_action": [room.pk]}, follow=True
    )
    assert "Opened 1 room(s)." in messages_of(response)
    room.refresh_from_db()
    assert room.status == Room.Status.OPEN
    [entry] = audit(room, Action.ROOM_OPEN)
    assert entry.actor == admin_user


def test_close_action_on_several_rooms(admin_client, room, owner):
    other = services.room_create(owner=owner, name="Other")
    admin_client.post(ROOMS_URL, {"action": "close_rooms", "_selected_action": [room.pk, other.pk]})
    assert set(Room.objects.values_list("status", flat=True)) == {"closed"}
    assert ModerationAction.objects.filter(action=Action.ROOM_CLOSE).count() == 2


def _inline_management(prefix: str = "memberships", initial: int = 0) -> dict:
    return {
        f"{prefix}-TOTAL_FORMS": str(initial),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


def test_add_room_in_admin_uses_room_create(admin_client, admin_user, owner):
    response = admin_client.post(
        reverse("admin:rooms_room_add"),
        {
            "name": "Made by staff",
            "topic": "hello",
            "owner": owner.pk,
            "capacity": 10,
            "seat_count": 4,
            "password": "letmein",
            **_inline_management(),
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    room = Room.objects.get(name="Made by staff")
    assert (room.owner, room.capacity, room.seat_count) == (owner, 10, 4)
    assert room.codec == Room.Codec.OPUS  # the default, when the form leaves it out
    assert room.is_private and room.check_password("letmein")
    # room_create's work: the owner is a member with role owner, seats exist, audit row.
    membership = Membership.objects.get(room=room, user=owner)
    assert membership.role == Membership.Role.OWNER
    assert room.seats.count() == 4
    assert len(audit(room, Action.ROOM_CREATE)) == 1


def test_add_a_pcm16_room_in_admin_and_its_codec_is_then_read_only(admin_client, admin_user, owner):
    response = admin_client.post(
        reverse("admin:rooms_room_add"),
        {
            "name": "PCM only",
            "owner": owner.pk,
            "capacity": 10,
            "seat_count": 2,
            "codec": "pcm16",
            **_inline_management(),
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    room = Room.objects.get(name="PCM only")
    assert room.codec == Room.Codec.PCM16

    url = reverse("admin:rooms_room_change", args=[room.pk])
    page = admin_client.get(url).content.decode()
    assert 'name="codec"' not in page  # shown, not editable
    response = admin_client.post(
        url,
        {
            "name": "PCM only",
            "topic": "",
            "capacity": 10,
            "seat_count": 2,
            "codec": "opus",
            "password": "",
            **_inline_management(),
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    room.refresh_from_db()
    assert room.codec == Room.Codec.PCM16


def test_edit_room_in_admin_uses_room_update(admin_client, admin_user, room, owner):
    url = reverse("admin:rooms_room_change", args=[room.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "alice" in html and "bob" in html  # the membership inline

    response = admin_client.post(
        url,
        {
            "name": "Night owls (renamed)",
            "topic": room.topic,
            "capacity": room.capacity,
            "seat_count": room.seat_count,
            "password": "",
            **_inline_management(initial=3),
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    room.refresh_from_db()
    assert room.name == "Night owls (renamed)"
    assert room.owner == owner
    [entry] = audit(room, Action.ROOM_UPDATE)
    assert entry.actor == admin_user
    assert entry.detail == {"name": "Night owls (renamed)"}


def test_rooms_cannot_be_deleted_in_admin(admin_client, room):
    response = admin_client.get(reverse("admin:rooms_room_delete", args=[room.pk]))
    assert response.status_code == 403
    assert Room.objects.filter(pk=room.pk).exists()
    page = admin_client.get(ROOMS_URL).content.decode()
    assert "delete_selected" not in page


# --- membership actions --------------------------------------------------------------------


def membership(room: Room, user: User) -> Membership:
    return Membership.objects.get(room=room, user=user)


def act(admin_client, action: str, *memberships: Membership, **extra):
    return admin_client.post(
        MEMBERS_URL,
        {"action": action, "_selected_action": [m.pk for m in memberships], **extra},
        follow=True,
    )


def test_mute_and_unmute_actions(admin_client, admin_user, room, alice, bob):
    response = act(admin_client, "mute", membership(room, alice), membership(room, bob))
    assert "Muted 2 member(s)." in messages_of(response)
    assert membership(room, alice).muted and membership(room, bob).muted
    entries = audit(room, Action.MUTE)
    assert {e.target for e in entries} == {alice, bob}
    assert {e.actor for e in entries} == {admin_user}

    response = act(admin_client, "unmute", membership(room, alice))
    assert "Unmuted 1 member(s)." in messages_of(response)
    assert not membership(room, alice).muted
    [entry] = audit(room, Action.UNMUTE)
    assert (entry.actor, entry.target) == (admin_user, alice)


def test_kick_action(admin_client, admin_user, room, alice, django_capture_on_commit_callbacks):
    connect(room, alice)
    with django_capture_on_commit_callbacks(execute=True):  # presence changes after commit
        response = act(admin_client, "kick", membership(room, alice))
    assert "Kicked 1 member(s)." in messages_of(response)
    kicked = membership(room, alice)
    assert not kicked.active and not kicked.banned
    assert selectors.online_count(room_id=room.pk) == 0
    [entry] = audit(room, Action.KICK)
    assert (entry.actor, entry.target) == (admin_user, alice)

    # The service refuses a second kick; the operator reads why, nothing is written.
    response = act(admin_client, "kick", kicked)
    assert any("not in the room" in m for m in messages_of(response))
    assert len(audit(room, Action.KICK)) == 1


def test_ban_and_unban_actions(admin_client, admin_user, room, bob):
    response = act(admin_client, "ban", membership(room, bob), reason="spamming the mic")
    assert "Banned 1 member(s)." in messages_of(response)
    banned = membership(room, bob)
    assert banned.banned and not banned.active
    assert banned.ban_reason == "spamming the mic"
    [entry] = audit(room, Action.BAN)
    assert (entry.actor, entry.target, entry.reason) == (admin_user, bob, "spamming the mic")

    response = act(admin_client, "unban", banned)
    assert "Unbanned 1 member(s)." in messages_of(response)
    assert not membership(room, bob).banned
    [entry] = audit(room, Action.UNBAN)
    assert (entry.actor, entry.target) == (admin_user, bob)


def test_moderating_the_owner_is_refused_with_the_service_message(admin_client, room, owner, alice):
    response = act(admin_client, "ban", membership(room, owner), membership(room, alice))
    shown = messages_of(response)
    assert any("Nobody can moderate the room's owner." in m for m in shown)
    assert "Banned 1 member(s)." in shown  # alice; the owner is untouched
    assert not membership(room, owner).banned
    assert [e.target for e in audit(room, Action.BAN)] == [alice]


def test_actions_call_the_services(admin_client, admin_user, room, alice, monkeypatch):
    seen = []
    monkeypatch.setattr(services, "member_kick", lambda **kw: seen.append(("kick", kw)))
    monkeypatch.setattr(services, "room_close", lambda **kw: seen.append(("close", kw)))
    act(admin_client, "kick", membership(room, alice))
    admin_client.post(ROOMS_URL, {"action": "close_rooms", "_selected_action": [room.pk]})
    assert [name for name, _ in seen] == ["kick", "close"]
    kick = seen[0][1]
    assert (kick["room"].pk, kick["actor"], kick["user_id"]) == (room.pk, admin_user, alice.pk)
    assert (seen[1][1]["room"].pk, seen[1][1]["actor"]) == (room.pk, admin_user)


def test_membership_admin_is_read_only(admin_client, room, alice):
    m = membership(room, alice)
    assert admin_client.get(reverse("admin:rooms_membership_add")).status_code == 403
    assert (
        admin_client.get(reverse("admin:rooms_membership_delete", args=[m.pk])).status_code == 403
    )
    url = reverse("admin:rooms_membership_change", args=[m.pk])
    assert admin_client.get(url).status_code == 200  # viewing is fine
    response = admin_client.post(url, {"muted": "on", "role": "admin"})
    assert response.status_code == 403
    m.refresh_from_db()
    assert (m.muted, m.role) == (False, Membership.Role.MEMBER)

    page = admin_client.get(MEMBERS_URL, {"q": "alice"})
    assert page.status_code == 200
    assert [x.user for x in page.context["cl"].result_list] == [alice]


def test_seats_are_numbered_from_1_in_the_admin_as_in_the_demo(admin_client, room, alice):
    services.seat_take(room=room, user=alice, index=2)  # the wire's index 2: "seat 3"
    m = membership(room, alice)

    def seat_shown(html: str) -> str:
        """The text of the first seat cell in `html`, tags left out."""
        after = re.split(r'field-seat[_\w]*"', html, maxsplit=1)[1].split(">", 1)[1]
        if '<div class="readonly">' in after[:1000]:  # a read-only form, not a table cell
            after = after.split('<div class="readonly">', 1)[1]
        cell = re.split(r"</td>|</div>", after, maxsplit=1)[0]
        return re.sub(r"<[^>]+>", "", cell).strip()

    listed = admin_client.get(MEMBERS_URL, {"q": "alice"}).content.decode()
    assert seat_shown(listed) == "3"
    inline = admin_client.get(reverse("admin:rooms_room_change", args=[room.pk])).content.decode()
    assert seat_shown(inline.split(">alice<")[1]) == "3"
    page = admin_client.get(reverse("admin:rooms_membership_change", args=[m.pk])).content.decode()
    assert seat_shown(page) == "3"


def test_staff_without_change_permission_get_no_moderation_actions(client, room):
    viewer = User.objects.create_user(username="viewer", password="pw-long-enough-1")
    viewer.is_staff = True
    viewer.save()
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(Permission.objects.get(codename="view_membership"))
    client.force_login(viewer)
    page = client.get(MEMBERS_URL)
    assert page.status_code == 200
    assert 'value="kick"' not in page.content.decode()
    response = client.post(
        MEMBERS_URL,
        {"action": "kick", "_selected_action": [m.pk for m in Membership.objects.all()]},
    )
    assert Membership.objects.filter(active=True).count() == 3
    assert response.status_code in (200, 302)


# --- audit log -----------------------------------------------------------------------------


def test_audit_log_admin_lists_entries_and_is_read_only(admin_client, admin_user, room, bob):
    act(admin_client, "ban", membership(room, bob), reason="rude")
    entry = ModerationAction.objects.get(action=Action.BAN)

    page = admin_client.get(AUDIT_URL)
    assert page.status_code == 200
    assert entry in page.context["cl"].result_list
    html = page.content.decode()
    assert "rude" in html
    assert "delete_selected" not in html
    assert reverse("admin:rooms_moderationaction_add") not in html

    assert admin_client.get(reverse("admin:rooms_moderationaction_add")).status_code == 403
    delete_url = reverse("admin:rooms_moderationaction_delete", args=[entry.pk])
    assert admin_client.get(delete_url).status_code == 403
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    change_url = reverse("admin:rooms_moderationaction_change", args=[entry.pk])
    assert admin_client.get(change_url).status_code == 200
    assert admin_client.post(change_url, {"reason": "edited"}).status_code == 403
    entry.refresh_from_db()
    assert entry.reason == "rude"

    from django.contrib import admin

    model_admin = admin.site._registry[ModerationAction]
    request = page.wsgi_request
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, entry)
    assert not model_admin.has_delete_permission(request, entry)


def test_user_admin_shows_display_name(admin_client, alice):
    page = admin_client.get(reverse("admin:accounts_user_changelist"), {"q": "Alice"})
    assert page.status_code == 200
    assert [u.username for u in page.context["cl"].result_list] == ["alice"]
    change = admin_client.get(reverse("admin:accounts_user_change", args=[alice.pk]))
    assert 'name="display_name"' in change.content.decode()
