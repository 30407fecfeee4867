"""participant_self_mute when presence still has a session but the membership row is gone."""

from __future__ import annotations

import pytest

from realtime import presence
from rooms import services
from rooms.models import Membership
from tests.factories import RoomFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_self_mute_returns_the_participant():
    room = RoomFactory()
    user = UserFactory()
    services.member_join(room=room, user=user)
    session = presence.store().attach(room.pk, user.pk, node="n", channel="c").session

    participant = services.participant_self_mute(
        room_id=room.pk, user_id=user.pk, session_id=session.session_id, muted=True
    )

    assert participant is not None
    assert participant["user_id"] == user.pk and participant["self_muted"] is True


def test_self_mute_of_a_member_whose_row_was_deleted_is_none():
    # The room or the user deleted (the membership goes with them) while a socket was
    # still open: the socket gets None, as for a session that is gone, not a crash.
    room = RoomFactory()
    user = UserFactory()
    services.member_join(room=room, user=user)
    session = presence.store().attach(room.pk, user.pk, node="n", channel="c").session
    Membership.objects.filter(room=room, user=user).delete()

    assert (
        services.participant_self_mute(
            room_id=room.pk, user_id=user.pk, session_id=session.session_id, muted=True
        )
        is None
    )
