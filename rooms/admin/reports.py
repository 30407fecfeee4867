"""Reports in the admin: the open ones first, each with its evidence played in the page,
the reported member's chat, and the moderation acts (mute, kick, ban) taken from it.

The acts are the services of rooms.services.moderation's table, as everywhere else; the
evidence file is served by the admin itself (staff only), never from a public URL.
"""

from __future__ import annotations

from typing import cast

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import path, reverse

from accounts.models import User
from rooms import policy, services
from rooms.api.views.reports import storage_file_response
from rooms.models import Report
from voiceroom.errors import ApplicationError

# Report page button -> (moderation act, message).
REPORT_ACTS = {
    "mute": ("mute", "Muted {who}."),
    "kick": ("kick", "Kicked {who}."),
    "ban": ("ban", "Banned {who}."),
}


class OpenFirstFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return (("open", "Open"), ("closed", "Closed"), ("all", "All"))

    def choices(self, changelist):
        value = self.value() or "open"
        for lookup, title in self.lookup_choices:
            yield {
                "selected": value == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value() or "open"
        return queryset if value == "all" else queryset.filter(status=value)


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "room",
        "reported",
        "reporter",
        "reason",
        "evidence_seconds",
        "created_at",
    )
    list_filter = (OpenFirstFilter,)
    list_select_related = ("room", "reported", "reporter")
    search_fields = ("reported__username", "reporter__username", "reason")
    readonly_fields = (
        "room",
        "reporter",
        "reported",
        "reason",
        "created_at",
        "evidence_seconds",
        "status",
        "closed_at",
    )
    fields = readonly_fields
    change_form_template = "admin/rooms/report/change_form.html"

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # the page shows; acts go through the buttons (services)

    def has_view_permission(self, request, obj=None):
        return policy.may_view_members_anywhere(request.user) or super().has_view_permission(
            request, obj
        )

    def get_urls(self):
        return [
            path(
                "<path:object_id>/evidence/",
                self.admin_site.admin_view(self.evidence_view),
                name="rooms_report_evidence",
            ),
            path(
                "<path:object_id>/act/<str:act>/",
                self.admin_site.admin_view(self.act_view),
                name="rooms_report_act",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        report = self.get_object(request, unquote(object_id))
        extra = dict(extra_context or {})
        if report is not None:
            extra["report"] = report
            extra["evidence_url"] = (
                reverse("admin:rooms_report_evidence", args=[report.pk]) if report.evidence else ""
            )
            extra["act_urls"] = {
                act: reverse("admin:rooms_report_act", args=[report.pk, act])
                for act in [*REPORT_ACTS, "close"]
            }
            extra["can_moderate"] = policy.operator_may(request.user, policy.MODERATE_MEMBERS)
        return super().change_view(request, object_id, form_url, extra)

    def evidence_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        report = self.get_object(request, unquote(object_id))
        if report is None or not report.evidence:
            raise Http404("No evidence.")
        if not self.has_view_permission(request, report):
            raise PermissionDenied
        return storage_file_response(report.evidence.name)

    def act_view(self, request: HttpRequest, object_id: str, act: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        report = self.get_object(request, unquote(object_id))
        if report is None or act not in [*REPORT_ACTS, "close"]:
            raise Http404("No such report or action.")
        # admin_view let only a signed-in staff member this far
        staff = cast(User, request.user)
        if not policy.operator_may(staff, policy.MODERATE_MEMBERS):
            raise PermissionDenied
        back = redirect(reverse("admin:rooms_report_change", args=[report.pk]))
        who = report.reported.username
        try:
            if act == "close":
                services.report_close(report=report, actor=staff)
                self.message_user(request, "Report closed.", messages.SUCCESS)
                return back
            name, verb = REPORT_ACTS[act]
            reason = (request.POST.get("_reason") or f"report #{report.pk}").strip()[:200]
            services.moderate(
                room=report.room,
                actor=staff,
                act=name,
                user_id=report.reported_id,
                reason=reason,
            )
        except ApplicationError as exc:
            self.message_user(request, exc.detail, messages.ERROR)
        else:
            self.message_user(request, verb.format(who=who), messages.SUCCESS)
        return back
