"""The ASGI entry point for daphne and uvicorn: HTTP to Django, WebSockets to rooms."""

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceroom.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from realtime.servers import daphne  # noqa: E402

daphne.install()  # the message size limit, under daphne (realtime/servers/daphne.py)

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from realtime import runtime  # noqa: E402
from rooms.ws.auth import (  # noqa: E402
    AddressLimitMiddleware,
    OriginValidator,
    SocketAuthMiddleware,
)
from rooms.ws.routing import websocket_urlpatterns  # noqa: E402


async def http_app(scope, receive, send) -> None:
    """Django, after making sure a node that takes part in placement runs its background
    work: it must heartbeat (and so be given rooms) before it has any socket, and the
    first HTTP request (its health check) comes before any socket does."""
    rt = runtime.current()
    if rt.placement is not None and rt.node_url:
        rt.start()  # a no-op once running on this loop
    await django_asgi_app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": OriginValidator(
            # URLRouter takes django's path()/re_path() patterns whose callbacks are ASGI
            # apps, as channels documents; the stubs want their own pattern subclass.
            AddressLimitMiddleware(
                SocketAuthMiddleware(URLRouter(websocket_urlpatterns))  # type: ignore[arg-type]
            )
        ),
    }
)


def _freeze_startup_heap() -> None:
    """Keep the objects that live as long as the process out of full garbage collections.

    A full collection walks every tracked object, and a node holds well over 100,000 of
    them from start-up alone (Django, DRF, the URLconf and its views). Measured with 200
    sockets, full collections blocked the event loop 25-115 ms each, long enough to
    trigger voice shedding when they came together with a burst of leaves. Frozen
    objects are never scanned again (docs/benchmarks.md, "Soak"). The URLconf is loaded
    first so that the views are part of the frozen heap.
    """
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 (imports every view module)
    gc.collect()
    gc.freeze()


_freeze_startup_heap()
