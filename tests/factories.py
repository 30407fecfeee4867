"""factory_boy factories. Rooms are made through rooms.services, like in production, so a
factory room has its owner membership, its seats and its audit row."""

from __future__ import annotations

import factory
from rest_framework.authtoken.models import Token

from accounts.models import User
from rooms import services
from rooms.models import Room

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    display_name = factory.Sequence(lambda n: f"User {n}")
    password = factory.django.Password(PASSWORD)


class RoomFactory(factory.Factory):
    class Meta:
        model = Room

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Room {n}")
    topic = "Just talking"
    capacity = 50
    seat_count = 8
    password = None

    @classmethod
    def _create(cls, model_class, **kwargs) -> Room:
        return services.room_create(**kwargs)

    @classmethod
    def _build(cls, model_class, **kwargs) -> Room:
        raise NotImplementedError("Rooms are made through services.room_create.")


# What an operator needs for every act on rooms (rooms/policy.py).
OPERATOR_PERMISSIONS = ("change_room", "change_membership", "view_room", "view_membership")


def operator(*codenames: str, **fields) -> User:
    """A staff user holding these `rooms` permissions (all of OPERATOR_PERMISSIONS when
    none is named). Being staff alone gives no power over rooms."""
    from django.contrib.auth.models import Permission

    user = UserFactory(is_staff=True, **fields)
    wanted = codenames or OPERATOR_PERMISSIONS
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="rooms", codename__in=wanted)
    )
    return User.objects.get(pk=user.pk)  # a fresh object: no stale permission cache


def token_for(user: User) -> str:
    return Token.objects.get_or_create(user=user)[0].key
