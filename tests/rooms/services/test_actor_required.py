"""Every moderation service is given its actor: a user, or rooms.policy.SYSTEM.

Services used to skip authorization when `actor` was None, so a call that forgot its
actor acted with every power. Now no value but a user or SYSTEM passes.
"""

from __future__ import annotations

import pytest

from rooms import policy, services
from rooms.models import Membership, ModerationAction
from tests.factories import RoomFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def room_and_member():
    room = RoomFactory()
    user = UserFactory()
    services.member_join(room=room, user=user)
    return room, user


@pytest.mark.parametrize(
    "act",
    [
        lambda room, user, actor: services.member_kick(room=room, actor=actor, user_id=user.pk),
        lambda room, user, actor: services.member_ban(room=room, actor=actor, user_id=user.pk),
        lambda room, user, actor: services.member_mute(
            room=room, actor=actor, user_id=user.pk, muted=True
        ),
        lambda room, user, actor: services.member_set_role(
            room=room, actor=actor, user_id=user.pk, role="admin"
        ),
        lambda room, user, actor: services.room_mute_all(room=room, actor=actor, muted=True),
        lambda room, user, actor: services.room_close(room=room, actor=actor),
        lambda room, user, actor: services.seat_lock(room=room, actor=actor, index=0, locked=True),
    ],
    ids=["kick", "ban", "mute", "role", "mute_all", "close", "seat_lock"],
)
def test_a_missing_actor_is_refused_and_changes_nothing(room_and_member, act):
    room, user = room_and_member

    with pytest.raises(TypeError):
        act(room, user, None)

    mine = Membership.objects.get(room=room, user=user)
    assert mine.active and not mine.banned and not mine.muted and mine.role == "member"
    assert not ModerationAction.objects.exclude(action=ModerationAction.Action.ROOM_CREATE).exists()


def test_the_system_acts_and_the_audit_row_names_no_actor(room_and_member):
    room, user = room_and_member

    services.member_kick(room=room, actor=policy.SYSTEM, user_id=user.pk)

    assert not Membership.objects.get(room=room, user=user).active
    [row] = ModerationAction.objects.filter(action=ModerationAction.Action.KICK)
    assert row.actor is None and row.target == user
