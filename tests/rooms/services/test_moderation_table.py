"""One table of moderation acts (rooms.services.MODERATION_ACTS) serves every face:
the socket's `moderate` frame, the admin's member actions and its live-panel buttons."""

from __future__ import annotations

import pytest

from rooms import services
from rooms.admin.rooms import RoomAdmin
from rooms.models import Membership
from rooms.ws.frames import MODERATE_ACTIONS
from tests.factories import RoomFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_every_socket_action_is_an_act_of_the_table():
    assert set(MODERATE_ACTIONS) <= set(services.MODERATION_ACTS)


def test_the_admin_buttons_run_the_tables_acts():
    runs = {act.run for act in services.MODERATION_ACTS.values()}
    assert {call for call, _verb, _needs in RoomAdmin.LIVE_ACTS.values()} <= runs


@pytest.mark.parametrize(
    ("act", "check"),
    [
        ("mute", lambda m: m.muted),
        ("kick", lambda m: not m.active),
        ("ban", lambda m: m.banned and m.ban_reason == "spam"),
    ],
)
def test_an_act_of_the_table_does_what_its_service_does(act, check):
    room = RoomFactory()
    user = UserFactory()
    services.member_join(room=room, user=user)

    services.moderate(room=room, actor=room.owner, act=act, user_id=user.pk, reason="spam")

    assert check(Membership.objects.get(room=room, user=user))
