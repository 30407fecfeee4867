"""The throttles hold across nodes: a daphne node and a uvicorn node sharing Redis (the
REST throttles' counts) and the database (the admin's lockout, django-axes' table).
Attempts spread over both nodes are counted together (issue 12, items 5, 6 and 7)."""

from __future__ import annotations

import http.cookiejar
import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from email.message import Message

import pytest

from tests.live import ROOT, Api, Node, base_env, database_for_processes, migrate

pytestmark = [pytest.mark.processes, pytest.mark.redis]

OPERATOR_PASSWORD = "an-Operator-pass-42"


@pytest.fixture(scope="module")
def two_nodes():
    url, cleanup = database_for_processes()
    env = base_env(
        DATABASE_URL=url,
        REDIS_URL=os.environ.get("REDIS_URL", ""),
        VOICEROOM_REDIS_PREFIX=f"thr{secrets.token_hex(3)}",
        VOICEROOM_THROTTLES="on",
        VOICEROOM_REGISTER_THROTTLE="4/hour",
        VOICEROOM_JOIN_PASSWORD_THROTTLE="2/hour",
        VOICEROOM_ADMIN_LOGIN_FAILURES="3",
        DJANGO_LOG_LEVEL="WARNING",
    )
    migrate(env)
    subprocess.run(
        [sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", "olga"],
        cwd=ROOT,
        env={**env, "DJANGO_SUPERUSER_PASSWORD": OPERATOR_PASSWORD, "DJANGO_SUPERUSER_EMAIL": ""},
        check=True,
        capture_output=True,
        timeout=120,
    )
    nodes = [Node("daphne", env), Node("uvicorn", env)]
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()
            node.discard_log()
        cleanup()


def register(node: Node) -> tuple[int, dict | None, Api]:
    name = f"u{secrets.token_hex(4)}"
    status, body = Api(node.url).call(
        "POST", "/api/auth/register", {"username": name, "password": "a-Long-pass-123"}
    )
    return status, body, Api(node.url, (body or {}).get("token"))


def retry_after(node: Node, path: str, body: dict, token: str | None) -> str | None:
    """The Retry-After header of a refused call (urllib's Api drops headers)."""
    request = urllib.request.Request(
        node.url + path, data=b"{}" if body == {} else None, method="POST"
    )
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Token {token}")
    try:
        urllib.request.urlopen(request, timeout=10)
    except urllib.error.HTTPError as e:
        return e.headers.get("Retry-After") if e.code == 429 else None
    return None


def test_register_and_room_password_limits_count_attempts_on_every_node(two_nodes):
    daphne, uvicorn = two_nodes
    # Register: 4 an hour from this address, whichever node answers.
    results = [register(node) for node in (daphne, daphne, uvicorn, uvicorn)]
    assert [status for status, _, _ in results] == [201, 201, 201, 201]
    status, body, _ = register(daphne)
    assert (status, body["code"]) == (429, "throttled")
    assert int(retry_after(uvicorn, "/api/auth/register", {}, None)) >= 1

    # Join with a room password: 2 wrong ones an hour per user and room, over both nodes.
    owner, guesser = results[0][2], results[1][2]
    room = owner.ok("POST", "/api/rooms/", {"name": "private", "password": "right one"})
    path = f"/api/rooms/{room['id']}/join"
    on_uvicorn = Api(uvicorn.url, guesser.token)
    assert guesser.call("POST", path, {"password": "guess 1"})[1]["code"] == "bad_password"
    assert on_uvicorn.call("POST", path, {"password": "guess 2"})[1]["code"] == "bad_password"
    status, body = guesser.call("POST", path, {"password": "right one"})
    assert (status, body["code"]) == (429, "throttled")
    # Another user (registered before the limit) is not held back by it.
    assert results[2][2].call("POST", path, {"password": "right one"})[0] == 200


class AdminBrowser:
    """Signs in to the admin's form as a browser does (CSRF cookie and token)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect()
        )

    def sign_in(self, password: str) -> tuple[int, Message]:
        login = self.node.url + "/admin/login/?next=/admin/"
        self.opener.open(login, timeout=10).read()
        token = next(c.value for c in self.cookies if c.name == "csrftoken")
        form = urllib.parse.urlencode(
            {"username": "olga", "password": password, "csrfmiddlewaretoken": token}
        ).encode()
        try:
            with self.opener.open(login, data=form, timeout=10) as response:
                return response.status, response.headers
        except urllib.error.HTTPError as e:
            return e.code, e.headers


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def test_the_admin_lockout_holds_on_every_node(two_nodes):
    daphne, uvicorn = two_nodes
    for node in (daphne, uvicorn):
        assert AdminBrowser(node).sign_in("wrong")[0] == 200
    status, headers = AdminBrowser(daphne).sign_in("wrong")  # the third failure
    assert status == 429
    status, headers = AdminBrowser(uvicorn).sign_in(OPERATOR_PASSWORD)
    assert status == 429 and int(headers["Retry-After"]) == 900
