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


def _action(act: str, verb: str, description: str) -> Callable[..., None]:
    """The admin action for moderation act `act`, named after it (`actions` lists names);
    `verb` starts what the operator reads after it ("Muted 3 member(s).")."""

    @admin.action(description=description, permissions=["moderate"])
    def action(modeladmin: MembershipAdmin, request: HttpRequest, queryset: QuerySet) -> None:
        modeladmin._moderate(request, queryset, act, verb)

    action.__name__ = act
    return action


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
        self, request: HttpRequest, queryset: QuerySet[Membership], act: str, verb: str
    ) -> None:
        """Do moderation act `act` (rooms.services.MODERATION_ACTS) on every selected member;
        a refusal is reported for that member and the others go on."""
        reason = (request.POST.get("reason") or "").strip()[:200]  # read by "ban" only
        done = 0
        for membership in queryset.select_related("room", "user"):
            try:
                services.moderate(
                    room=membership.room,
                    actor=request.user,  # type: ignore[arg-type]  # admin pages: staff only
                    act=act,
                    user_id=membership.user_id,
                    reason=reason,
                )
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

    mute = _action("mute", "Muted", "Mute the selected members")
    unmute = _action("unmute", "Unmuted", "Unmute the selected members")
    kick = _action("kick", "Kicked", "Kick the selected members (they may join again)")
    ban = _action("ban", "Banned", "Ban the selected members (reason above)")
    unban = _action("unban", "Unbanned", "Unban the selected members")
