"""The admin of memberships: moderation actions on members, one service each."""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.db.models import QuerySet
from django.http import HttpRequest

from rooms import policy, services
from rooms.models import Membership
from voiceroom.errors import ApplicationError


class SeatNumberColumn:
    """The "seat" column of the membership admins, named by string in their field lists
    (django-stubs types those lists as names; Django finds the name on the admin)."""

    @admin.display(description="seat", ordering="seat")
    def seat_number(self, membership: Membership) -> int | str:
        """Seats are numbered from 1 wherever a person reads them, as in the demo; the
        wire's and the database's index counts from 0. No seat: "-", as the admin shows no
        value (read-only forms would print a None as "None")."""
        return "-" if membership.seat is None else membership.seat + 1


class ModerationActionForm(ActionForm):
    reason = forms.CharField(
        required=False,
        max_length=200,
        label="Reason (for bans)",
        help_text="Stored in the audit log.",
    )


@admin.register(Membership)
class MembershipAdmin(SeatNumberColumn, admin.ModelAdmin):
    """Members of every room. Read-only rows; change them with the moderation actions."""

    list_display = ("room", "user", "role", "active", "muted", "banned", "seat_number", "joined_at")
    list_filter = ("role", "active", "muted", "banned")
    search_fields = ("room__name", "user__username", "user__display_name")
    list_select_related = ("room", "user")
    readonly_fields = (
        "room",
        "user",
        "role",
        "active",
        "muted",
        "banned",
        "ban_reason",
        "seat_number",
        "joined_at",
        "updated_at",
    )
    fields = readonly_fields
    action_form = ModerationActionForm
    actions = ["mute", "unmute", "kick", "ban", "unban"]

    def has_add_permission(self, request):
        return False  # people join rooms themselves (REST join)

    def has_change_permission(self, request, obj=None):
        return False  # no form edits: every change is a service call (the actions)

    def has_delete_permission(self, request, obj=None):
        return False  # the row carries the ban and the role; kick instead

    def has_moderate_permission(self, request) -> bool:
        return policy.operator_may(request.user, policy.MODERATE_MEMBERS)

    def _moderate(
        self,
        request: HttpRequest,
        queryset: QuerySet[Membership],
        call: Callable[[Membership], object],
        verb: str,
    ) -> None:
        done = 0
        for membership in queryset.select_related("room", "user"):
            try:
                call(membership)
            except ApplicationError as exc:
                self.message_user(
                    request,
                    f"{membership.user} in {membership.room}: {exc.detail}",
                    messages.ERROR,
                )
            else:
                done += 1
        if done:
            self.message_user(request, f"{verb} {done} member(s).", messages.SUCCESS)

    @admin.action(description="Mute the selected members", permissions=["moderate"])
    def mute(self, request, queryset):
        self._moderate(
            request,
            queryset,
            lambda m: services.moderate(
                room=m.room, actor=request.user, act="mute", user_id=m.user_id
            ),
            "Muted",
        )

    @admin.action(description="Unmute the selected members", permissions=["moderate"])
    def unmute(self, request, queryset):
        self._moderate(
            request,
            queryset,
            lambda m: services.moderate(
                room=m.room, actor=request.user, act="unmute", user_id=m.user_id
            ),
            "Unmuted",
        )

    @admin.action(
        description="Kick the selected members (they may join again)", permissions=["moderate"]
    )
    def kick(self, request, queryset):
        self._moderate(
            request,
            queryset,
            lambda m: services.moderate(
                room=m.room, actor=request.user, act="kick", user_id=m.user_id
            ),
            "Kicked",
        )

    @admin.action(description="Ban the selected members (reason above)", permissions=["moderate"])
    def ban(self, request, queryset):
        reason = (request.POST.get("reason") or "").strip()[:200]
        self._moderate(
            request,
            queryset,
            lambda m: services.moderate(
                room=m.room, actor=request.user, act="ban", user_id=m.user_id, reason=reason
            ),
            "Banned",
        )

    @admin.action(description="Unban the selected members", permissions=["moderate"])
    def unban(self, request, queryset):
        self._moderate(
            request,
            queryset,
            lambda m: services.moderate(
                room=m.room, actor=request.user, act="unban", user_id=m.user_id
            ),
            "Unbanned",
        )
