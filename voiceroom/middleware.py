"""Every 4xx/5xx answer under the API's paths is JSON `{"code", "detail"}`.

DRF views already answer that way; this covers what happens before a view runs or
outside DRF: an unknown /api/ path (Django's 404 page), a wrong method on the health
endpoints (an empty 405), an uncaught error (Django's 500 page).
"""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, JsonResponse

JSON_PREFIXES = ("/api/", "/healthz", "/readyz", "/metrics")

_CODES = {
    400: ("malformed_request", "The request could not be understood."),
    404: ("not_found", "There is nothing at this address."),
    405: ("method_not_allowed", "This method is not allowed here."),
    500: ("server_error", "Something went wrong on our side; it has been logged."),
    503: ("service_unavailable", "The service is not ready; try again."),
}


def _is_json(response: HttpResponse) -> bool:
    return response.get("Content-Type", "").startswith("application/json")


class JsonErrorsMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code < 400 or not request.path.startswith(JSON_PREFIXES):
            return response
        if _is_json(response) and (_has_code(response) or response.status_code == 503):
            return response  # DRF's answers, and /readyz's report of its checks
        code, detail = _CODES.get(
            response.status_code,
            ("error", response.reason_phrase or "The request failed."),
        )
        replacement = JsonResponse({"code": code, "detail": detail}, status=response.status_code)
        if "Allow" in response:
            replacement["Allow"] = response["Allow"]
        return replacement


def _has_code(response: HttpResponse) -> bool:
    try:
        body = json.loads(response.content or b"null")
    except (ValueError, AttributeError):
        return False
    return isinstance(body, dict) and "code" in body
