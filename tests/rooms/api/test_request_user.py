"""rooms.api.views._common._user: the signed-in user a REST view acts as."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from rooms.api.views._common import _user
from tests.factories import UserFactory


def _request(user):
    request = Request(APIRequestFactory().get("/api/rooms"))
    request.user = user
    return request


@pytest.mark.django_db
def test_a_signed_in_request_acts_as_its_user():
    user = UserFactory()
    assert _user(_request(user)) == user


def test_an_anonymous_request_is_not_authenticated():
    # IsAuthenticated refuses these before any view runs; should a view ever drop it,
    # the answer is the same 401, not a service called with an anonymous user.
    with pytest.raises(NotAuthenticated):
        _user(_request(AnonymousUser()))
