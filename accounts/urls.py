from django.urls import path

from accounts import apis


def _route(route: str, view, name: str) -> list:
    """The contract's path, plus the same path with a trailing slash as an unlisted alias."""
    return [
        path(route, view.as_view(), name=name),
        path(f"{route}/", view.as_view(schema=None)),
    ]


urlpatterns = [
    *_route("register", apis.RegisterApi, "auth-register"),
    *_route("login", apis.LoginApi, "auth-login"),
    *_route("wechat", apis.WechatLoginApi, "auth-wechat"),
    *_route("dev", apis.DevLoginApi, "auth-dev"),
    *_route("logout", apis.LogoutApi, "auth-logout"),
    *_route("me", apis.MeApi, "auth-me"),
]
