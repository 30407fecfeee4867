from django.urls import path, re_path

from rooms.ws.auth import SocketAuthMiddleware
from rooms.ws.consumer import RoomConsumer, UnknownRouteConsumer

websocket_urlpatterns = [
    path("ws/rooms/<int:room_id>/", SocketAuthMiddleware(RoomConsumer.as_asgi())),
    # channels routes ASGI apps through django's re_path(); the stubs want a view there.
    re_path(r"^", UnknownRouteConsumer.as_asgi()),  # type: ignore[arg-type]
]
