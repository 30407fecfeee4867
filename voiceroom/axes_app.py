"""django-axes' app, with its `user_login_failed` receiver swapped for the one in
voiceroom.adminlock (admin requests only). Listed in INSTALLED_APPS instead of "axes"."""

from __future__ import annotations

from axes.apps import AppConfig


class AxesConfig(AppConfig):
    def ready(self) -> None:
        super().ready()  # imports axes.signals, which connects axes' receivers
        from axes import signals
        from django.contrib.auth.signals import user_login_failed

        from voiceroom import adminlock

        user_login_failed.disconnect(signals.handle_user_login_failed)
        user_login_failed.connect(
            adminlock.admin_login_failed, dispatch_uid="voiceroom.adminlock.login_failed"
        )
