from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView, TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from rooms.api.views import RoomListCreateApi
from voiceroom import health

urlpatterns = [
    # Someone who opens the node's address lands on the demo, not on a 404 (or, with
    # DEBUG, Django's page listing every route).
    path("", RedirectView.as_view(pattern_name="demo", permanent=False), name="home"),
    path("admin/", admin.site.urls),
    path("api/auth/", include("accounts.urls")),
    path("api/rooms/", include("rooms.api.urls")),
    # Without the slash too: APPEND_SLASH cannot redirect a POST without losing its body.
    path("api/rooms", RoomListCreateApi.as_view(schema=None)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # The browser demo (templates/demo/, code in clients/demo/ served as static files).
    path("demo/", TemplateView.as_view(template_name="demo/index.html"), name="demo"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
]
