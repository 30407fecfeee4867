"""The ASGI entry point for daphne and uvicorn: HTTP to Django, WebSockets to rooms."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceroom.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from rooms.auth import (  # noqa: E402
    AddressLimitMiddleware,
    OriginValidator,
    SocketAuthMiddleware,
)
from rooms.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": OriginValidator(
            AddressLimitMiddleware(SocketAuthMiddleware(URLRouter(websocket_urlpatterns)))
        ),
    }
)
