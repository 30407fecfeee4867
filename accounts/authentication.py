from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.request import Request

from accounts.models import User

if TYPE_CHECKING:

    class AuthenticatedRequest(Request):
        """What a view behind IsAuthenticated (the default permission) receives: DRF types
        `request.user` as possibly anonymous, which such a view never sees."""

        @property
        def user(self) -> User: ...
        @user.setter
        def user(self, value: User) -> None: ...

else:
    AuthenticatedRequest = Request  # the same object at runtime; only the type is narrower


def token_expired(token: Token) -> bool:
    """A token lives VOICEROOM_TOKEN_TTL_S from its creation (signing in again after that
    gives a new one); a leaked token is not a key for ever."""
    ttl = timedelta(seconds=int(settings.VOICEROOM_TOKEN_TTL_S))
    return token.created + ttl <= timezone.now()


def token_user(key: str) -> User | None:
    """The user of an API token that is known, not expired, and whose user is active.

    Signing out, a password change and deactivation delete the token (User.save), so a
    token that still exists was issued after the user's last revocation."""
    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active or token_expired(token):
        return None
    return token.user


class BearerTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>` (DRF's convention), the only way REST clients sign in.

    A header that names another scheme is refused with 401 rather than ignored, so a
    client that sends a wrong header learns it at once. An expired token is refused
    like an unknown one (401 `authentication_failed`).
    """

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header and not header.split(" ", 1)[0].lower() == self.keyword.lower():
            raise exceptions.AuthenticationFailed(
                "Invalid Authorization header: use 'Token <token>'."
            )
        return super().authenticate(request)

    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        if token_expired(token):
            raise exceptions.AuthenticationFailed("Token expired: sign in again.")
        return user, token
