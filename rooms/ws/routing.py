from django.urls import path, re_path

from rooms.ws.auth import SocketAuthMiddleware
from rooms.ws.consumer import RoomConsumer, UnknownRouteConsumer

websocket_urlpatterns = [
    path("ws/rooms/<int:room_id>/", SocketAuthMiddleware(RoomConsumer.as_asgi())),
    re_path(r"^", UnknownRouteConsumer.as_asgi()),
]
