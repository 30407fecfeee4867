"""The outbox admin page: pending and failed events, and a replay."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import User
from tests.factories import RoomFactory
from webhooks.models import Event

pytestmark = pytest.mark.django_db

LIST = reverse("admin:webhooks_event_changelist")


@pytest.fixture
def admin_client(client):
    user = User.objects.create_superuser(username="root", password="pw-long-enough-1")
    client.force_login(user)
    return client


def test_the_backlog_filter_lists_pending_and_failed_not_delivered(webhooks_on, admin_client):
    RoomFactory()
    RoomFactory()
    RoomFactory()
    first, second, third = Event.objects.order_by("id")
    Event.objects.filter(pk=first.pk).update(status="failed", last_error="HTTP 500")
    Event.objects.filter(pk=third.pk).update(status="delivered")
    page = admin_client.get(LIST, {"status": "backlog"}).content.decode()
    assert f"/{first.pk}/change/" in page and "HTTP 500" in page
    assert f"/{second.pk}/change/" in page
    assert f"/{third.pk}/change/" not in page


def test_replay_sends_a_failed_event_again(webhooks_on, admin_client):
    RoomFactory()
    event = Event.objects.get()
    Event.objects.filter(pk=event.pk).update(status="failed", attempts=9, last_error="HTTP 500")
    page = admin_client.get(reverse("admin:webhooks_event_change", args=[event.pk]))
    assert b"Send again" in page.content and b"room.created" in page.content
    response = admin_client.post(reverse("admin:webhooks_event_replay", args=[event.pk]))
    assert response.status_code == 302
    event.refresh_from_db()
    assert (event.status, event.attempts, event.last_error) == ("pending", 0, "")


def test_replay_needs_the_change_permission(webhooks_on, client):
    from django.contrib.auth.models import Permission

    RoomFactory()
    event = Event.objects.get()
    Event.objects.filter(pk=event.pk).update(status="failed")
    viewer = User.objects.create_user(username="v", password="pw-long-enough-1", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_event"))
    client.force_login(viewer)
    assert client.get(LIST).status_code == 200
    response = client.post(reverse("admin:webhooks_event_replay", args=[event.pk]))
    assert response.status_code == 403
    assert Event.objects.get(pk=event.pk).status == "failed"


def test_search_by_room_id_event_id_or_type(webhooks_on, admin_client):
    room = RoomFactory()
    RoomFactory()
    mine, theirs = Event.objects.order_by("id")
    for term, shown, hidden in [
        (str(room.pk), mine, theirs),
        (str(theirs.uid), theirs, mine),
        ("room.created", mine, None),
        ("not-a-number", None, mine),
    ]:
        response = admin_client.get(LIST, {"q": term})
        assert response.status_code == 200, term
        page = response.content.decode()
        if shown is not None:
            assert f"/{shown.pk}/change/" in page, term
        if hidden is not None:
            assert f"/{hidden.pk}/change/" not in page, term
