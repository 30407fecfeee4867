"""Errors that clients see: every 4xx body is {"code", "detail"} (plus "fields" for forms).

Services raise `ApplicationError` subclasses with a stable code; the REST exception
handler and the WebSocket consumer both turn them into that shape.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, parsers, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from voiceroom.parsers import JSONParser

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """A refusal a client can act on. `code` is stable; `detail` is for humans."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    code = "invalid"

    def __init__(self, detail: str, *, code: str | None = None, status_code: int | None = None):
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code


class NotFound(ApplicationError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


class Forbidden(ApplicationError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "forbidden"


class Conflict(ApplicationError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"


class ServiceUnavailable(ApplicationError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "service_unavailable"


class ErrorSerializer(serializers.Serializer):
    """The body of every 4xx answer; documents the shape in the OpenAPI schema."""

    code = serializers.CharField(help_text="Stable snake_case code a client can act on.")
    detail = serializers.CharField(help_text="Human-readable explanation.")
    # DRF's metaclass moves declared fields off the class, so this does not shadow the
    # Serializer.fields property at runtime; the stubs cannot see that.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Per-field messages, present on validation errors (code `invalid`).",
    )

    class Meta:
        ref_name = "Error"


# The parsers of views that read a body (also DRF's default, see settings).
PARSER_CLASSES = [JSONParser, parsers.FormParser, parsers.MultiPartParser]


_DRF_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ParseError: "malformed_request",
    exceptions.ValidationError: "invalid",
}


def _first_message(data: Any) -> str:
    if isinstance(data, dict):
        for key, value in data.items():
            text = _first_message(value)
            if text:
                return text if key == "non_field_errors" else f"{key}: {text}"
        return ""
    if isinstance(data, list):
        return _first_message(data[0]) if data else ""
    return str(data)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response({"code": exc.code, "detail": exc.detail}, status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, DjangoValidationError):
        # Keep the field names of a dict-shaped error (full_clean, password validators), so
        # clients get "fields" as they do for serializer errors.
        messages = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        exc = exceptions.ValidationError(detail=messages)
    elif _is_redis_unavailable(exc):
        logger.error("Redis error answered with 503", exc_info=exc)
        return Response(
            {"code": "redis_unavailable", "detail": "Live state is unavailable; try again."},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    elif _is_database_unavailable(exc):
        logger.error("database error answered with 503", exc_info=exc)
        return Response(
            {"code": "database_unavailable", "detail": "The database is not answering; try again."},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = {"code": code, "detail": _first_message(fields) or "Invalid input."}
        if isinstance(exc.detail, dict):
            response.data["fields"] = exc.detail
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        response.data = {"code": code, "detail": str(detail)}
    return response


def _is_database_unavailable(exc: Exception) -> bool:
    from django.db import InterfaceError, OperationalError

    return isinstance(exc, (OperationalError, InterfaceError))


def _is_redis_unavailable(exc: Exception) -> bool:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return isinstance(exc, (RedisConnectionError, RedisTimeoutError))
