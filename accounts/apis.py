"""REST endpoints for accounts: /api/auth/register, login, wechat, logout, me.

Thin views: validate the body, call accounts.services, render with UserSerializer.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.validators import UnicodeUsernameValidator
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.authentication import AuthenticatedRequest
from accounts.serializers import UserSerializer
from voiceroom.errors import PARSER_CLASSES, ErrorSerializer, NotFound
from voiceroom.throttling import AddressRateThrottle

# Long enough for any passphrase, short enough that hashing it is not a denial of service.
PASSWORD_MAX_LENGTH = 256


def _error(text: str) -> OpenApiResponse:
    return OpenApiResponse(response=ErrorSerializer, description=text)


UNAUTHORIZED = _error("`not_authenticated` (no token) or `authentication_failed` (bad token).")


class AuthOutputSerializer(serializers.Serializer):
    user = UserSerializer()
    token = serializers.CharField(help_text="Send as `Authorization: Token <token>`.")

    class Meta:
        ref_name = "AuthResult"


def _auth_payload(user, token) -> dict:
    return AuthOutputSerializer({"user": user, "token": token.key}).data


class RegisterApi(APIView):
    parser_classes = PARSER_CLASSES
    # A stale or wrong token must not stop anyone from creating an account.
    authentication_classes: list = []
    permission_classes = [AllowAny]
    # Per address: registering costs a password hash, and its answer tells whether a
    # name is taken.
    throttle_classes = [AddressRateThrottle]
    throttle_scope = "register"

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
        password = serializers.CharField(
            max_length=PASSWORD_MAX_LENGTH, trim_whitespace=False, write_only=True
        )
        display_name = serializers.CharField(
            max_length=64, required=False, allow_blank=True, default=""
        )

        class Meta:
            ref_name = "Register"

    @extend_schema(
        operation_id="auth_register",
        summary="Create an account",
        request=InputSerializer,
        responses={
            201: AuthOutputSerializer,
            400: _error(
                "`username_taken`, `invalid` (with `fields`, e.g. a password that Django's "
                "validators refuse) or `malformed_request`."
            ),
            429: _error("`throttled`: too many attempts; see the Retry-After header."),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user, token = services.user_register(**serializer.validated_data)
        return Response(_auth_payload(user, token), status=status.HTTP_201_CREATED)


class LoginApi(APIView):
    parser_classes = PARSER_CLASSES
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [AddressRateThrottle]
    throttle_scope = "login"

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(
            max_length=PASSWORD_MAX_LENGTH, trim_whitespace=False, write_only=True
        )

        class Meta:
            ref_name = "Login"

    @extend_schema(
        operation_id="auth_login",
        summary="Sign in and get the account's token",
        request=InputSerializer,
        responses={
            200: AuthOutputSerializer,
            400: _error("`invalid_credentials`, `invalid` or `malformed_request`."),
            429: _error("`throttled`: too many attempts; see the Retry-After header."),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user, token = services.user_login(**serializer.validated_data)
        return Response(_auth_payload(user, token))


class DevLoginApi(APIView):
    """Sign-in for local development, answered only when the node runs with DEBUG on."""

    parser_classes = PARSER_CLASSES
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [AddressRateThrottle]
    throttle_scope = "login"

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
        password = serializers.CharField(
            max_length=PASSWORD_MAX_LENGTH, trim_whitespace=False, write_only=True
        )

        class Meta:
            ref_name = "DevLogin"

    @extend_schema(
        operation_id="auth_dev",
        summary="Development sign-in (DEBUG nodes only)",
        description=(
            "For trying the mini-program example against a local node (`make run`): logs "
            "in, or creates the account on first use. Answers like login. A node with "
            "DJANGO_DEBUG off answers 404 `not_found`."
        ),
        request=InputSerializer,
        responses={
            200: AuthOutputSerializer,
            400: _error("`invalid_credentials`, `invalid` or `malformed_request`."),
            404: _error("`not_found`: DEBUG is off on this node."),
            429: _error("`throttled`: too many attempts; see the Retry-After header."),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        if not settings.DEBUG:
            raise NotFound("Development sign-in is off: this node runs with DJANGO_DEBUG off.")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user, token = services.user_dev_sign_in(**serializer.validated_data)
        return Response(_auth_payload(user, token))


class WechatLoginApi(APIView):
    parser_classes = PARSER_CLASSES
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [AddressRateThrottle]
    throttle_scope = "login"

    class InputSerializer(serializers.Serializer):
        code = serializers.CharField(
            max_length=128, help_text="The code from the mini-program's `wx.login()`."
        )

        class Meta:
            ref_name = "WechatLogin"

    @extend_schema(
        operation_id="auth_wechat",
        summary="Sign in from a WeChat mini-program",
        description=(
            "Exchanges the code of `wx.login()` with WeChat (`jscode2session`). The first "
            "sign-in of a WeChat user creates their account; later ones find it again. "
            "Answers like login."
        ),
        request=InputSerializer,
        responses={
            200: AuthOutputSerializer,
            400: _error(
                "`wechat_code_invalid` (WeChat refused the code: expired or already used), "
                "`invalid` (no code) or `malformed_request`."
            ),
            403: _error("`account_disabled`."),
            429: _error("`throttled`: too many attempts; see the Retry-After header."),
            503: _error(
                "`wechat_unavailable` (WeChat busy or unreachable; try again) or "
                "`wechat_not_configured` (this server has no WeChat app id and secret)."
            ),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user, token = services.user_wechat_login(**serializer.validated_data)
        return Response(_auth_payload(user, token))


class LogoutApi(APIView):
    @extend_schema(
        operation_id="auth_logout",
        summary="Sign out: the token stops working",
        description=(
            "Signs out every device: the token stops working, and so do the user's "
            "WebSocket tickets and resume tokens; their open room sockets close with 4001."
        ),
        request=None,
        responses={204: OpenApiResponse(description="Signed out."), 401: UNAUTHORIZED},
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        services.user_logout(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeApi(APIView):
    @extend_schema(
        operation_id="auth_me",
        summary="The signed-in user",
        responses={200: UserSerializer, 401: UNAUTHORIZED},
    )
    def get(self, request: Request) -> Response:
        return Response(UserSerializer(request.user).data)
