"""The admin of rooms: list, edit, close and open, members inline, the live panel."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, TypedDict

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import path, reverse

from rooms import policy, selectors, services
from rooms.admin.live import live_urls
from rooms.admin.memberships import SeatNumberColumn
from rooms.models import Membership, Room
from voiceroom.errors import ApplicationError

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class _NotLookedUp(enum.Enum):
    NOT_LOOKED_UP = enum.auto()


_NOT_LOOKED_UP: Final = _NotLookedUp.NOT_LOOKED_UP


class _MemberCount(TypedDict):
    member_count: int  # RoomAdmin.get_queryset's annotation


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

    codec = forms.ChoiceField(
        choices=Room.Codec.choices,
        required=False,
        initial=Room.Codec.OPUS,
        help_text="What every client of the room sends; Opus unless clients only do PCM16. "
        "Cannot be changed later.",
    )

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
        fields = ["name", "topic", "owner", "capacity", "seat_count", "codec"]


class MembershipInline(SeatNumberColumn, admin.TabularInline):
    """Who belongs to the room. Read-only: moderation goes through the Membership actions."""

    model = Membership
    fields = ("user", "role", "muted", "banned", "seat_number", "active", "joined_at")
    readonly_fields = fields
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
        "codec",
        "created_at",
    )
    list_display_links = ("id", "name")
    list_filter = ("status", "codec", PrivateFilter, "created_at")
    search_fields = ("name", "topic", "owner__username")
    list_select_related = ("owner",)
    date_hierarchy = "created_at"
    readonly_fields = ("status", "is_private", "created_at", "updated_at")
    inlines = [MembershipInline]
    actions = ["open_rooms", "close_rooms", "mute_all_rooms", "unmute_all_rooms"]
    autocomplete_fields = ("owner",)

    def get_fieldsets(self, request, obj=None):
        main = ["name", "topic", "owner", "capacity", "seat_count", "codec"]
        fieldsets: list[tuple[str | None, dict[str, list[str]]]] = [(None, {"fields": main})]
        fieldsets.append(("Password", {"fields": ["password", "remove_password"]}))
        if obj is not None:
            fieldsets.append(
                ("State", {"fields": ["status", "is_private", "created_at", "updated_at"]})
            )
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        # room_update cannot move ownership or change the codec: both are chosen once,
        # at creation (clients of the room were built around the codec).
        if obj is not None:
            return (*self.readonly_fields, "owner", "codec")
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
    def member_count(self, room: WithAnnotations[Room, _MemberCount]) -> int:
        return room.member_count

    @admin.display(description="online")
    def online_count(self, room: Room) -> int | str:
        count: int | _NotLookedUp | None = getattr(room, "admin_online_count", _NOT_LOOKED_UP)
        if count is _NOT_LOOKED_UP:  # a room shown outside the changelist
            return selectors.online_count(room_id=room.pk)
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
                codec=data.get("codec") or Room.Codec.OPUS,
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
        service: Callable[..., object],  # its result is not used
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
            lambda room, actor: services.moderate(room=room, actor=actor, act="mute_all"),
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
            lambda room, actor: services.moderate(room=room, actor=actor, act="unmute_all"),
            "Unmuted everyone in",
        )

    # -- the change page: live participants and their moderation buttons ----------------

    # What each button does: a service call on (room, actor, user id, ban reason), the
    # message the operator reads after it, and whether it needs a participant.
    LIVE_ACTS: dict[str, tuple[Callable[..., object], str, bool]] = {
        button: (
            services.MODERATION_ACTS[act].run,
            verb,
            services.MODERATION_ACTS[act].needs_target,
        )
        for button, act, verb in [
            ("mute", "mute", "Muted {who}."),
            ("unmute", "unmute", "Unmuted {who}."),
            ("kick", "kick", "Kicked {who}."),
            ("ban", "ban", "Banned {who}."),
            ("seat_remove", "seat.remove", "Took {who} off their seat."),
            ("accept", "seat.request.accept", "Seated {who}."),
            ("refuse", "seat.request.refuse", "Refused the seat request of {who}."),
            ("mute_all", "mute_all", "Muted everyone but the moderators."),
            ("unmute_all", "unmute_all", "Unmuted everyone but the moderators."),
        ]
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
        # The Live page of all rooms (rooms/admin/live.py), before "<object_id>/".
        return [*live_urls(self), live, panel, *super().get_urls()]

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
