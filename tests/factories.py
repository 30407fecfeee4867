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


def token_for(user: User) -> str:
    return Token.objects.get_or_create(user=user)[0].key
