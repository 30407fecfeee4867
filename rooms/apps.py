from django.apps import AppConfig


def _credentials_revoked(sender, user, **kwargs) -> None:
    """accounts.signals.credentials_revoked: after commit, take the user out of every room
    (their sockets close 4001 on every node). A failure there (Redis down) must not undo
    or fail the sign-out: their tickets and resume tokens are refused anyway."""
    from django.db import transaction

    from rooms import services

    user_id = user.pk
    transaction.on_commit(lambda: services.participants_revoke(user_id=user_id), robust=True)


class RoomsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "rooms"

    def ready(self) -> None:
        from accounts.signals import credentials_revoked
        from realtime import metrics, runtime
        from rooms import reaper

        metrics.register()
        # The realtime runtime runs rooms' database work as callbacks (it imports no
        # rooms models or services): housekeeping, and who may speak for the mute gate.
        runtime.register_job("reaper", reaper.run)
        runtime.set_speak_check(reaper.speak_check)
        runtime.set_recording_check(reaper.recording_check)
        # Recording tracks go to Django's storage (realtime/recording.py stays database-free).
        from rooms.services.recording import install_track_store

        install_track_store()
        credentials_revoked.connect(_credentials_revoked, dispatch_uid="rooms.participants_revoke")
