"""A REST request that needs live state while Redis is down answers 503, not 500."""

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from rest_framework.test import APIClient

from accounts.models import User
from realtime import presence
from rooms import services


@pytest.mark.django_db
def test_room_detail_answers_503_redis_unavailable_when_presence_fails(monkeypatch):
    owner = User.objects.create_user(username="owner1", password="a-Long-pass-123")
    room = services.room_create(owner=owner, name="r")

    class Down:
        def __getattr__(self, name):
            def fail(*args, **kwargs):
                raise RedisConnectionError("Connection refused")

            return fail

    client = APIClient()
    client.force_authenticate(owner)
    with monkeypatch.context() as patch:
        patch.setattr(presence, "store", lambda: Down())
        response = client.get(f"/api/rooms/{room.pk}/")
    assert response.status_code == 503
    assert response.json()["code"] == "redis_unavailable"
