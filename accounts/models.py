from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """The account of a person who talks in rooms."""

    display_name = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return self.username

    @property
    def shown_name(self) -> str:
        return self.display_name or self.username
