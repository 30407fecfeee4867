"""Writes for accounts: registering, signing in (password or WeChat) and out.

A user has one API token (DRF authtoken), valid for VOICEROOM_TOKEN_TTL_S. Signing out,
a password change and deactivation revoke it and every realtime credential of the user
(User.save), so every client that held them must sign in again.
"""

from __future__ import annotations

import secrets

from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from accounts import wechat
from accounts.authentication import token_expired
from accounts.models import User, WechatIdentity
from voiceroom.errors import ApplicationError, Forbidden


def _username_taken() -> ApplicationError:
    return ApplicationError("That username is taken.", code="username_taken")


@transaction.atomic
def user_register(*, username: str, password: str, display_name: str = "") -> tuple[User, Token]:
    """Create an account and its token. The password must pass Django's validators."""
    # Case-insensitive, so "Bob" and "bob" are refused alike on every database (MySQL's
    # collation would refuse the second only at the unique index).
    if User.objects.filter(username__iexact=username).exists():
        raise _username_taken()
    user = User(username=username, display_name=display_name or "")
    try:
        validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise DjangoValidationError({"password": exc.messages}) from None
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:  # a concurrent registration of the same name won the race
        raise _username_taken() from None
    token = Token.objects.create(user=user)
    return user, token


def user_login(*, username: str, password: str) -> tuple[User, Token]:
    """Check the credentials; answer the user's token (created if they had none)."""
    user = authenticate(request=None, username=username, password=password)
    if user is None:
        raise ApplicationError("Wrong username or password.", code="invalid_credentials")
    user.last_login = timezone.now()
    user.save(update_fields=["last_login"])
    return user, _live_token(user)


def user_dev_sign_in(*, username: str, password: str) -> tuple[User, Token]:
    """Development sign-in (only routed when DEBUG is on): log in, or create the account
    on first use, so a mini-program in WeChat DevTools can sign in to a local node
    without a WeChat app secret."""
    if User.objects.filter(username__iexact=username).exists():
        return user_login(username=username, password=password)
    return user_register(username=username, password=password, display_name=username)


def _live_token(user: User) -> Token:
    """The user's token, or a new one when they have none or theirs expired."""
    token, created = Token.objects.get_or_create(user=user)
    if not created and token_expired(token):
        Token.objects.filter(pk=token.pk).delete()
        token, _ = Token.objects.get_or_create(user=user)
    return token


def user_logout(*, user: User) -> None:
    """Sign out everywhere: the token stops working at once, on every client that held
    it, and so do the user's tickets, resume tokens and open room sockets (4001)."""
    user.revoke_credentials()


def user_wechat_login(*, code: str) -> tuple[User, Token]:
    """Sign in a mini-program user with the code of `wx.login()`.

    WeChat tells the openid behind the code; the first sign-in of an openid creates an
    account (a generated username, no usable password), later ones find it again.
    """
    found = wechat.code_to_session(code=code)
    user = _wechat_user(openid=found.openid, unionid=found.unionid)
    if not user.is_active:
        raise Forbidden("This account is disabled.", code="account_disabled")
    user.last_login = timezone.now()
    user.save(update_fields=["last_login"])
    return user, _live_token(user)


def _wechat_user(*, openid: str, unionid: str) -> User:
    identity = WechatIdentity.objects.select_related("user").filter(openid=openid).first()
    if identity is not None:
        if unionid and identity.unionid != unionid:
            identity.unionid = unionid
            identity.save(update_fields=["unionid"])
        return identity.user
    try:
        with transaction.atomic():
            user = User(username=_free_wechat_username())
            user.set_unusable_password()
            user.save()
            WechatIdentity.objects.create(user=user, openid=openid, unionid=unionid)
    except IntegrityError:  # a concurrent first sign-in of the same openid won the race
        return WechatIdentity.objects.select_related("user").get(openid=openid).user
    return user


def _free_wechat_username() -> str:
    while True:
        name = f"wx_{secrets.token_hex(5)}"
        if not User.objects.filter(username__iexact=name).exists():
            return name
