from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.utils.translation import gettext_lazy as _

from accounts.models import User, WechatIdentity


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    """Django's user admin, plus the name people see in rooms."""

    list_display = (
        "username",
        "display_name",
        "email",
        "is_staff",
        "is_active",
        "date_joined",
        "last_login",
    )
    search_fields = ("username", "display_name", "email")
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        (_("Personal info"), {"fields": ("display_name", "first_name", "last_name", "email")}),
        (
            _("Permissions"),
            {
                "fields": (
                    "is_active",
                    "is_staff",
                    "is_superuser",
                    "groups",
                    "user_permissions",
                ),
            },
        ),
        (_("Important dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("username", "display_name", "usable_password", "password1", "password2"),
            },
        ),
    )


@admin.register(WechatIdentity)
class WechatIdentityAdmin(admin.ModelAdmin):
    """Which account a WeChat mini-program user (openid) signs in as."""

    list_display = ("openid", "user", "unionid", "created_at")
    search_fields = ("openid", "unionid", "user__username")
    raw_id_fields = ("user",)
    readonly_fields = ("created_at",)
