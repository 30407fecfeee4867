from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "webhooks"

    def ready(self) -> None:
        from realtime import runtime
        from webhooks import delivery, metrics

        metrics.register()
        # The nodes deliver: the loop runs as a background job of each process's runtime
        # (realtime imports no database code, so the job is registered from here).
        runtime.register_job("webhooks", delivery.run_job)
