from django.urls import path, re_path

from rooms.auth import SocketAuthMiddleware
from rooms.consumers import RoomConsumer, UnknownRouteConsumer

websocket_urlpatterns = [
    path("ws/rooms/<int:room_id>/", SocketAuthMiddleware(RoomConsumer.as_asgi())),
    re_path(r"^", UnknownRouteConsumer.as_asgi()),
]
