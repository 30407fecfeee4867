"""The operators' admin. It reads freely but changes state only through rooms.services.

Opening, closing, muting (one member or all), kicking, banning, seating: each admin
action and each button of a room's live participants table calls the same service as the
REST API and the WebSocket moderation frames, so the audit log, the broadcasts and the
sockets closed are the same whoever acted. Which of them an operator gets is decided by
rooms.policy.operator_may, the test the services apply to that operator over REST and
the socket. Where a service refuses (an `ApplicationError`), the operator sees its
message; nothing is forced around it.
"""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import path, reverse

from rooms import policy, selectors, services
from rooms.models import Membership, ModerationAction, Room
from voiceroom.errors import ApplicationError

# --- rooms ---------------------------------------------------------------------------------

_NOT_LOOKED_UP = object()


class RoomChangeList(ChangeList):
    """Looks up the page's live online counts in one presence call, not one per row."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        rooms = list(self.result_list)
        try:
            counts = selectors.online_counts(room_ids=[room.pk for room in rooms])
        except Exception:  # Redis down: the page still lists rooms, without live counts
            counts = None
        for room in rooms:
            room.admin_online_count = None if counts is None else counts.get(room.pk, 0)


class PrivateFilter(admin.SimpleListFilter):
    title = "is private"
    parameter_name = "private"

    def lookups(self, request, model_admin):
        return (("yes", "Yes (password)"), ("no", "No"))

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(password_hash="")
        if self.value() == "no":
            return queryset.filter(password_hash="")
        return queryset


class RoomAdminForm(forms.ModelForm):
    """Room fields, plus the room password as plain text in, hash stored (by the service)."""

    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the current password (or none, for a new room).",
    )
    remove_password = forms.BooleanField(
        required=False, help_text="Make the room public (no password)."
    )

    class Meta:
        model = Room
        fields = ["name", "topic", "owner", "capacity", "seat_count"]


@admin.display(description="seat", ordering="seat")
def seat_number(membership: Membership) -> int | str:
    """Seats are numbered from 1 wherever a person reads them, as in the demo; the wire's
    and the database's index counts from 0. No seat: "-", as the admin shows no value
    (read-only forms would print a None as "None")."""
    return "-" if membership.seat is None else membership.seat + 1


class MembershipInline(admin.TabularInline):
    """Who belongs to the room. Read-only: moderation goes through the Membership actions."""

    model = Membership
    # Django accepts callables in fields and readonly_fields; django-stubs allow only names.
    fields = ("user", "role", "muted", "banned", seat_number, "active", "joined_at")  # type: ignore[assignment]
    readonly_fields = fields  # type: ignore[assignment]
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("-active", "joined_at")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    form = RoomAdminForm
    list_display = (
        "id",
        "name",
        "status",
        "owner",
        "member_count",
        "online_count",
        "is_private",
        "capacity",
        "seat_count",
        "created_at",
    )
    list_display_links = ("id", "name")
    list_filter = ("status", PrivateFilter, "created_at")
    search_fields = ("name", "topic", "owner__username")
    list_select_related = ("owner",)
    date_hierarchy = "created_at"
    readonly_fields = ("status", "is_private", "created_at", "updated_at")
    inlines = [MembershipInline]
    actions = ["open_rooms", "close_rooms", "mute_all_rooms", "unmute_all_rooms"]
    autocomplete_fields = ("owner",)

    def get_fieldsets(self, request, obj=None):
        main = ["name", "topic", "owner", "capacity", "seat_count"]
        fieldsets: list[tuple[str | None, dict[str, list[str]]]] = [(None, {"fields": main})]
        fieldsets.append(("Password", {"fields": ["password", "remove_password"]}))
        if obj is not None:
            fieldsets.append(
                ("State", {"fields": ["status", "is_private", "created_at", "updated_at"]})
            )
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        # room_update cannot move ownership; the owner is chosen once, at creation.
        if obj is not None:
            return (*self.readonly_fields, "owner")
        return self.readonly_fields

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                member_count=Count("memberships", filter=Q(memberships__active=True)),
            )
        )

    def get_changelist(self, request, **kwargs):
        return RoomChangeList

    def has_delete_permission(self, request, obj=None):
        # Operators close rooms; deleting would also erase the room's audit log.
        return False

    @admin.display(description="members", ordering="member_count")
    def member_count(self, room: Room) -> int:
        return room.member_count  # type: ignore[attr-defined]  # get_queryset's Count()

    @admin.display(description="online")
    def online_count(self, room: Room) -> int | str:
        count = getattr(room, "admin_online_count", _NOT_LOOKED_UP)
        if count is _NOT_LOOKED_UP:  # a room shown outside the changelist
            return selectors.online_count(room_id=room.pk)
        assert count is None or isinstance(count, int)  # what get_queryset looked up
        return "?" if count is None else count

    @admin.display(description="private", boolean=True)
    def is_private(self, room: Room) -> bool:
        return room.is_private

    def save_model(self, request, obj, form, change):
        """Create and edit through the services, never by saving the form's instance."""
        data = form.cleaned_data
        password = data.get("password") or None
        if not change:
            room = services.room_create(
                owner=data["owner"],
                name=data["name"],
                topic=data.get("topic") or "",
                capacity=data["capacity"],
                seat_count=data["seat_count"],
                password=password,
            )
        else:
            changes = {
                name: data[name]
                for name in ("name", "topic", "capacity", "seat_count")
                if name in form.changed_data
            }
            if data.get("remove_password"):
                changes["password"] = None
            elif password:
                changes["password"] = password
            room = obj
            if changes:
                room = services.room_update(room=obj, actor=request.user, **changes)
        # The admin goes on with `obj` (inlines, messages, redirect): make it the saved row.
        obj.pk = room.pk
        for field in Room._meta.concrete_fields:
            setattr(obj, field.attname, getattr(room, field.attname))
        obj._state.adding = False
        obj._state.db = room._state.db

    def _room_action(
        self,
        request: HttpRequest,
        queryset: QuerySet[Room],
        service: Callable[..., object],
        verb: str,
    ) -> None:
        done = 0
        for room in queryset:
            try:
                service(room=room, actor=request.user)
            except ApplicationError as exc:
                self.message_user(request, f"{room}: {exc.detail}", messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(request, f"{verb} {done} room(s).", messages.SUCCESS)

    def has_change_permission(self, request, obj=None) -> bool:
        # The edit form and the open/close actions: the power REST and the socket check
        # for the same acts (rooms.policy).
        return policy.operator_may(request.user, policy.CHANGE_ROOM)

    def has_moderate_permission(self, request) -> bool:
        """Moderating people is changing memberships, as in the Membership admin."""
        return policy.operator_may(request.user, policy.MODERATE_MEMBERS)

    @admin.action(
        description="Mute everyone but the moderators in the selected rooms",
        permissions=["moderate"],
    )
    def mute_all_rooms(self, request, queryset):
        self._room_action(
            request,
            queryset,
            lambda room, actor: services.room_mute_all(room=room, actor=actor, muted=True),
            "Muted everyone in",
        )

    @admin.action(
        description="Unmute everyone but the moderators in the selected rooms",
        permissions=["moderate"],
    )
    def unmute_all_rooms(self, request, queryset):
        self._room_action(
            request,
            queryset,
            lambda room, actor: services.room_mute_all(room=room, actor=actor, muted=False),
            "Unmuted everyone in",
        )

    # -- the change page: live participants and their moderation buttons ----------------

    # What each button does: a service call on (room, actor, user id, ban reason), the
    # message the operator reads after it, and whether it needs a participant.
    LIVE_ACTS: dict[str, tuple[Callable[..., object], str, bool]] = {
        "mute": (
            lambda room, actor, uid, reason: services.member_mute(
                room=room, actor=actor, user_id=uid, muted=True
            ),
            "Muted {who}.",
            True,
        ),
        "unmute": (
            lambda room, actor, uid, reason: services.member_mute(
                room=room, actor=actor, user_id=uid, muted=False
            ),
            "Unmuted {who}.",
            True,
        ),
        "kick": (
            lambda room, actor, uid, reason: services.member_kick(
                room=room, actor=actor, user_id=uid
            ),
            "Kicked {who}.",
            True,
        ),
        "ban": (
            lambda room, actor, uid, reason: services.member_ban(
                room=room, actor=actor, user_id=uid, reason=reason
            ),
            "Banned {who}.",
            True,
        ),
        "seat_remove": (
            lambda room, actor, uid, reason: services.seat_remove(
                room=room, actor=actor, user_id=uid
            ),
            "Took {who} off their seat.",
            True,
        ),
        "accept": (
            lambda room, actor, uid, reason: services.seat_request_accept(
                room=room, actor=actor, user_id=uid
            ),
            "Seated {who}.",
            True,
        ),
        "refuse": (
            lambda room, actor, uid, reason: services.seat_request_refuse(
                room=room, actor=actor, user_id=uid
            ),
            "Refused the seat request of {who}.",
            True,
        ),
        "mute_all": (
            lambda room, actor, uid, reason: services.room_mute_all(
                room=room, actor=actor, muted=True
            ),
            "Muted everyone but the moderators.",
            False,
        ),
        "unmute_all": (
            lambda room, actor, uid, reason: services.room_mute_all(
                room=room, actor=actor, muted=False
            ),
            "Unmuted everyone but the moderators.",
            False,
        ),
    }

    def get_urls(self):
        live = path(
            "<path:object_id>/live/<str:act>/",
            self.admin_site.admin_view(self.live_action_view),
            name="rooms_room_live",
        )
        panel = path(
            "<path:object_id>/live/",
            self.admin_site.admin_view(self.live_panel_view),
            name="rooms_room_live_panel",
        )
        return [live, panel, *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        room = self.get_object(request, unquote(object_id))
        if room is not None:
            extra_context["live"] = self._live_context(request, room)
        return super().change_view(request, object_id, form_url, extra_context)

    def _live_context(self, request: HttpRequest, room: Room) -> dict:
        urls = {
            act: reverse("admin:rooms_room_live", args=[room.pk, act]) for act in self.LIVE_ACTS
        }
        live = {
            "can_moderate": self.has_moderate_permission(request),
            "urls": urls,
            "panel_url": reverse("admin:rooms_room_live_panel", args=[room.pk]),
        }
        try:
            participants = selectors.participant_list(room_id=room.pk)
        except Exception:  # Redis down: the page still works, without the live part
            live["error"] = "Live participants are unavailable (presence store unreachable)."
            participants = []
        live["participants"] = sorted(participants, key=lambda p: (p["seat"] is None, p["seat"]))
        requests = selectors.seat_request_list(room_id=room.pk)
        names = dict(
            Membership.objects.filter(
                room=room, user_id__in=[r["user_id"] for r in requests]
            ).values_list("user_id", "user__username")
        )
        live["requests"] = [{**r, "username": names.get(r["user_id"], "?")} for r in requests]
        return live

    def live_panel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The live tables alone, as the change page shows them: the page polls this to
        stay current. Whoever may see the room's page may see this (staff: admin_view)."""
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        room = self.get_object(request, unquote(object_id))
        if room is None:
            raise Http404("No such room.")
        if not self.has_view_or_change_permission(request, room):
            raise PermissionDenied
        html = render_to_string(
            "admin/rooms/room/live_participants.html",
            {"live": self._live_context(request, room)},
            request=request,
        )
        return HttpResponse(html)

    def live_action_view(self, request: HttpRequest, object_id: str, act: str) -> HttpResponse:
        """A button of the live participants table: one service call, then back to the room."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if act not in self.LIVE_ACTS:
            raise Http404("Unknown action.")
        room = self.get_object(request, unquote(object_id))
        if room is None:
            raise Http404("No such room.")
        if not self.has_moderate_permission(request):
            raise PermissionDenied
        call, verb, needs_user = self.LIVE_ACTS[act]
        back = redirect(reverse("admin:rooms_room_change", args=[room.pk]))
        user_id = None
        if needs_user:
            raw = request.POST.get("_live_user", "")
            if not (raw.isascii() and raw.isdigit()):
                self.message_user(request, "Choose a participant.", messages.ERROR)
                return back
            user_id = int(raw)
        reason = (request.POST.get("_live_reason") or "").strip()[:200]
        try:
            call(room, request.user, user_id, reason)
        except ApplicationError as exc:
            self.message_user(request, exc.detail, messages.ERROR)
        else:
            who = ""
            if user_id is not None:
                found = selectors.membership_find(room_id=room.pk, user_id=user_id)
                who = found.user.username if found is not None else f"user #{user_id}"
            self.message_user(request, verb.format(who=who), messages.SUCCESS)
        return back

    @admin.action(description="Open the selected rooms", permissions=["change"])
    def open_rooms(self, request, queryset):
        self._room_action(request, queryset, services.room_open, "Opened")

    @admin.action(
        description="Close the selected rooms (disconnects everyone)", permissions=["change"]
    )
    def close_rooms(self, request, queryset):
        self._room_action(request, queryset, services.room_close, "Closed")


# --- memberships -------------------------------------------------------------------------


class ModerationActionForm(ActionForm):
    reason = forms.CharField(
        required=False,
        max_length=200,
        label="Reason (for bans)",
        help_text="Stored in the audit log.",
    )


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    """Members of every room. Read-only rows; change them with the moderation actions."""

    # Django accepts display callables returning any value (and callables in readonly_fields
    # and fields below); django-stubs want str | bool, and names only.
    list_display = ("room", "user", "role", "active", "muted", "banned", seat_number, "joined_at")  # type: ignore[assignment]
    list_filter = ("role", "active", "muted", "banned")
    search_fields = ("room__name", "user__username", "user__display_name")
    list_select_related = ("room", "user")
    readonly_fields = (  # type: ignore[assignment]
        "room",
        "user",
        "role",
        "active",
        "muted",
        "banned",
        "ban_reason",
        seat_number,
        "joined_at",
        "updated_at",
    )
    fields = readonly_fields  # type: ignore[assignment]
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
            lambda m: services.member_mute(
                room=m.room, actor=request.user, user_id=m.user_id, muted=True
            ),
            "Muted",
        )

    @admin.action(description="Unmute the selected members", permissions=["moderate"])
    def unmute(self, request, queryset):
        self._moderate(
            request,
            queryset,
            lambda m: services.member_mute(
                room=m.room, actor=request.user, user_id=m.user_id, muted=False
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
            lambda m: services.member_kick(room=m.room, actor=request.user, user_id=m.user_id),
            "Kicked",
        )

    @admin.action(description="Ban the selected members (reason above)", permissions=["moderate"])
    def ban(self, request, queryset):
        reason = (request.POST.get("reason") or "").strip()[:200]
        self._moderate(
            request,
            queryset,
            lambda m: services.member_ban(
                room=m.room, actor=request.user, user_id=m.user_id, reason=reason
            ),
            "Banned",
        )

    @admin.action(description="Unban the selected members", permissions=["moderate"])
    def unban(self, request, queryset):
        self._moderate(
            request,
            queryset,
            lambda m: services.member_unban(room=m.room, actor=request.user, user_id=m.user_id),
            "Unbanned",
        )


# --- audit log ----------------------------------------------------------------------------


@admin.register(ModerationAction)
class ModerationActionAdmin(admin.ModelAdmin):
    """The audit log, as the services wrote it. Nobody adds, edits or deletes entries."""

    list_display = ("created_at", "room", "action", "actor", "target", "reason")
    list_filter = ("action", "created_at")
    search_fields = ("room__name", "actor__username", "target__username", "reason")
    list_select_related = ("room", "actor", "target")
    date_hierarchy = "created_at"
    fields = ("created_at", "room", "action", "actor", "target", "reason", "detail")
    readonly_fields = fields
    actions = None

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
