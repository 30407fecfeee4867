"""drf-spectacular post-processing: the error answers every operation can give.

The views document the refusals of their own rules. These come from the layers around
them (voiceroom.errors.exception_handler and DRF's request parsing), so they are added to
every operation here instead of to each view, and cannot be forgotten on a new one.
"""

from __future__ import annotations

ERROR = {"$ref": "#/components/schemas/Error"}


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": ERROR}}}


# Operations with a request body: the body may be unreadable or of another media type.
BODY_ERRORS = {
    "400": _error("`invalid` (with `fields`) or `malformed_request`: the body cannot be read."),
    "415": _error("`unsupported_media_type`: send JSON, a form or multipart."),
}
# Every operation: a dependency down (voiceroom.errors.exception_handler).
ANY_ERRORS = {
    "503": _error("`database_unavailable` or `redis_unavailable`: try again later."),
}


def add_common_errors(result: dict, generator, request, public) -> dict:
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            extra = {**ANY_ERRORS, **(BODY_ERRORS if "requestBody" in operation else {})}
            for status, response in extra.items():
                responses.setdefault(status, response)
    return result
