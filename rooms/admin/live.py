"""The Live page: the rooms people are in now, refreshed in place.

`/admin/rooms/room/live/` shows the table; the page fetches `live/data/` (JSON, from
rooms.live.live_rooms) every few seconds and rewrites the rows, so it follows the
service without a reload. Whoever may view rooms may see it. RoomAdmin.get_urls adds
the two URLs (`live_urls`).
"""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.cache import never_cache

from rooms import live

REFRESH_MS = 3000


def _data(request: HttpRequest) -> dict:
    try:
        rooms = live.live_rooms()
        error = ""
    except Exception:  # Redis down: the page says so and keeps polling
        rooms, error = [], "Presence store unreachable: live rooms unavailable."
    return {"rooms": rooms, "error": error}


def live_urls(model_admin: admin.ModelAdmin) -> list:
    site = model_admin.admin_site

    def check(request: HttpRequest) -> None:
        if not model_admin.has_view_or_change_permission(request):
            raise PermissionDenied

    @never_cache
    def page(request: HttpRequest) -> HttpResponse:
        check(request)
        context = {
            **site.each_context(request),
            "title": "Live rooms",
            "opts": model_admin.model._meta,
            "live": _data(request),
            "data_url": reverse("admin:rooms_room_live_data"),
            "room_url": reverse("admin:rooms_room_change", args=[0]).replace("/0/", "/{id}/"),
            "refresh_ms": REFRESH_MS,
        }
        return TemplateResponse(request, "admin/rooms/room/live.html", context)

    @never_cache
    def data(request: HttpRequest) -> HttpResponse:
        check(request)
        return JsonResponse(_data(request))

    return [
        path("live/", site.admin_view(page), name="rooms_room_live_rooms"),
        path("live/data/", site.admin_view(data), name="rooms_room_live_data"),
    ]
