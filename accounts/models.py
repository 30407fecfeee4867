from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AbstractUser
from django.db import models, transaction
from django.utils import timezone

from accounts.signals import credentials_revoked


def credentials_epoch(revoked_at: datetime | None) -> float:
    """The value a credential carries from its issue: it stops working once it differs."""
    return revoked_at.timestamp() if revoked_at is not None else 0.0


class User(AbstractUser):
    """The account of a person who talks in rooms."""

    display_name = models.CharField(max_length=64, blank=True)
    # Every credential issued before this moment is dead: the API token, WebSocket
    # tickets, resume tokens and open sockets. Set by signing out, a password change and
    # deactivation, however they are made (REST, the admin, manage.py, code that saves).
    credentials_revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    # set_password() leaves Django's own mark (`_password`); set_unusable_password() none.
    # Django's AbstractBaseUser sets `_password` in __init__ and set_password(); its stubs
    # do not declare it.
    _password: str | None
    _password_made_unusable = False
    _revoke_on_save = False

    def __str__(self) -> str:
        return self.username

    @property
    def shown_name(self) -> str:
        return self.display_name or self.username

    @property
    def credentials_epoch(self) -> float:
        return credentials_epoch(self.credentials_revoked_at)

    def set_unusable_password(self) -> None:
        super().set_unusable_password()
        self._password_made_unusable = True

    def revoke_credentials(self) -> None:
        """End every credential issued so far (signing out): see `save`."""
        self._revoke_on_save = True
        self.save(update_fields=["credentials_revoked_at"])

    def save(self, *args, **kwargs) -> None:
        """Save; when this saves a new password or a deactivation (or `revoke_credentials`
        asked for it), also revoke every credential the user holds, in one transaction:
        stamp `credentials_revoked_at`, delete the API token, and send
        `credentials_revoked` (rooms then closes the user's sockets after commit)."""
        update_fields = kwargs.get("update_fields")
        revoke = self._must_revoke(update_fields)
        self._password_made_unusable = self._revoke_on_save = False
        if not revoke:
            super().save(*args, **kwargs)
            return
        self.credentials_revoked_at = timezone.now()
        if update_fields is not None:
            kwargs["update_fields"] = {*update_fields, "credentials_revoked_at"}
        from rest_framework.authtoken.models import Token

        with transaction.atomic():
            super().save(*args, **kwargs)
            Token.objects.filter(user=self).delete()
            credentials_revoked.send(sender=type(self), user=self)

    def _must_revoke(self, update_fields) -> bool:
        if self._state.adding:
            return False  # a new account has issued nothing yet
        if self._revoke_on_save:
            return True

        def saves(field: str) -> bool:
            return update_fields is None or field in update_fields

        # Django sets `_password` in set_password() and clears it itself for the hash
        # upgrade check_password() does at sign-in, which is not a change of password.
        if saves("password") and (self._password is not None or self._password_made_unusable):
            return True
        if not self.is_active and saves("is_active"):
            # One query, only when saving an inactive user: was it active until now?
            return type(self)._default_manager.filter(pk=self.pk, is_active=True).exists()
        return False


class WechatIdentity(models.Model):
    """A WeChat mini-program user (openid from jscode2session), signed in as `user`."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="wechat")
    # openids are 28 characters today; WeChat documents no maximum, so leave room.
    openid = models.CharField(max_length=128, unique=True)
    unionid = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "WeChat identity"
        verbose_name_plural = "WeChat identities"

    def __str__(self) -> str:
        return f"{self.openid} -> {self.user_id}"
