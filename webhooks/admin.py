"""The outbox in the admin: what is pending or failed, why, and a replay.

Rows are written by the services and the delivery loop only: the page reads them, and
its one act, replay (`webhooks.services.event_replay`), needs the change permission on
events. Filter by status to see the backlog (pending) or what gave up (failed).
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.html import format_html

from webhooks.models import Event
from webhooks.services import event_replay


class StatusFilter(admin.SimpleListFilter):
    """Pending and failed first: what an operator opens this page for."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [
            ("backlog", "Pending or failed"),
            *((s.value, s.label) for s in Event.Status),
        ]

    def queryset(self, request, queryset):
        if self.value() == "backlog":
            return queryset.exclude(status=Event.Status.DELIVERED)
        if self.value() in Event.Status.values:
            return queryset.filter(status=self.value())
        return queryset


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "type",
        "room_id",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
    )
    list_filter = (StatusFilter, "type")
    search_fields = ("=room_id", "=uid", "type")
    date_hierarchy = "created_at"
    fields = (
        "uid",
        "type",
        "room_id",
        "status",
        "attempts",
        "created_at",
        "next_attempt_at",
        "give_up_at",
        "lease_owner",
        "lease_until",
        "last_error",
        "delivered_at",
        "payload",
    )
    readonly_fields = fields
    actions = ["replay_events"]
    change_form_template = "admin/webhooks/event/change_form.html"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="body sent")
    def payload(self, obj: Event) -> str:
        return format_html("<pre>{}</pre>", json.dumps(json.loads(obj.body), indent=2))

    def get_urls(self):
        replay = path(
            "<path:object_id>/replay/",
            self.admin_site.admin_view(self.replay_view),
            name="webhooks_event_replay",
        )
        return [replay, *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        extra_context["replay_url"] = reverse("admin:webhooks_event_replay", args=[object_id])
        extra_context["may_replay"] = self.has_change_permission(request)
        return super().change_view(request, object_id, form_url, extra_context)

    def replay_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        event = self.get_object(request, unquote(object_id))
        if event is None:
            raise Http404("No such event.")
        event_replay(event=event)
        self.message_user(request, f"Event {event.pk} will be sent again.", messages.SUCCESS)
        return redirect(reverse("admin:webhooks_event_change", args=[event.pk]))

    @admin.action(description="Send the selected events again", permissions=["change"])
    def replay_events(self, request, queryset):
        n = 0
        for event in queryset.order_by("id"):
            event_replay(event=event)
            n += 1
        self.message_user(request, f"{n} event(s) will be sent again.", messages.SUCCESS)
