"""The moderation log: read-only."""

from __future__ import annotations

from django.contrib import admin

from rooms.models import ModerationAction


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
