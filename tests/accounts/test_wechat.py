"""POST /api/auth/wechat against a local HTTP server that answers like WeChat's
jscode2session: success, refused codes, busy, garbage, HTTP errors, silence."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rest_framework.test import APIClient

from accounts.models import User, WechatIdentity
from tests.live import free_port

pytestmark = pytest.mark.django_db

SECRET = "s3cret-app-secret-never-logged"
APP_ID = "wx1234567890abcdef"


class FakeWechat(BaseHTTPRequestHandler):
    """Answers by the js_code it gets: `ok-<openid>`, `refused-<errcode>`, `busy`, ..."""

    requests: list[dict] = []

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        type(self).requests.append({"path": url.path, **query})
        code = query.get("js_code", "")
        if code.startswith("ok-"):
            body = {"openid": code[3:], "session_key": "sk-not-for-logs", "unionid": "union-1"}
            self._answer(200, json.dumps(body))
        elif code.startswith("refused-"):
            errcode = int(code.split("-", 1)[1])
            self._answer(200, json.dumps({"errcode": errcode, "errmsg": "invalid code, rid: x"}))
        elif code == "busy":
            self._answer(200, json.dumps({"errcode": -1, "errmsg": "system error"}))
        elif code == "garbage":
            self._answer(200, "<html>gateway says hi</html>")
        elif code == "no-openid":
            self._answer(200, json.dumps({"session_key": "x"}))
        elif code == "surrogate-openid":  # JSON allows "\ud800"; UTF-8 cannot carry it
            self._answer(200, json.dumps({"openid": "o\ud800", "session_key": "x"}))
        elif code == "http-502":
            self._answer(502, "bad gateway")
        elif code == "slow":
            time.sleep(2)
            self._answer(200, json.dumps({"openid": "late"}))
        else:
            self._answer(200, json.dumps({"errcode": 40029, "errmsg": "invalid code"}))

    def _answer(self, status: int, body: str) -> None:
        data = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (the "slow" case)

    def log_message(self, *args):
        pass


@pytest.fixture
def wechat(settings):
    FakeWechat.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeWechat)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    settings.VOICEROOM_WECHAT_APP_ID = APP_ID
    settings.VOICEROOM_WECHAT_APP_SECRET = SECRET
    settings.VOICEROOM_WECHAT_API_BASE = f"http://127.0.0.1:{server.server_address[1]}/"
    settings.VOICEROOM_WECHAT_TIMEOUT_S = 0.5
    yield FakeWechat
    server.shutdown()
    server.server_close()


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


def sign_in(code) -> tuple[int, dict]:
    body = {} if code is None else {"code": code}
    response = APIClient().post("/api/auth/wechat", body, format="json")
    return response.status_code, response.json()


def test_first_sign_in_creates_an_account_and_a_working_token(wechat):
    status, body = sign_in("ok-openid-A")

    assert status == 200, body
    assert set(body) == {"user", "token"}
    assert set(body["user"]) == {"id", "username", "display_name"}
    me = APIClient()
    me.credentials(HTTP_AUTHORIZATION=f"Token {body['token']}")
    assert me.get("/api/auth/me").json()["id"] == body["user"]["id"]
    identity = WechatIdentity.objects.get(openid="openid-A")
    assert identity.user_id == body["user"]["id"]
    assert identity.unionid == "union-1"
    assert not identity.user.has_usable_password()
    # What WeChat was asked: exactly its documented request.
    assert wechat.requests == [
        {
            "path": "/sns/jscode2session",
            "appid": APP_ID,
            "secret": SECRET,
            "js_code": "ok-openid-A",
            "grant_type": "authorization_code",
        }
    ]


def test_the_same_wechat_user_finds_the_same_account(wechat):
    _, first = sign_in("ok-openid-B")
    status, again = sign_in("ok-openid-B")
    _, other = sign_in("ok-openid-C")

    assert status == 200
    assert again["user"] == first["user"]
    assert again["token"] == first["token"]
    assert other["user"]["id"] != first["user"]["id"]
    assert User.objects.count() == 2


@pytest.mark.parametrize("errcode", [40029, 40163, 40226])
def test_a_code_wechat_refuses_is_400_wechat_code_invalid(wechat, errcode):
    status, body = sign_in(f"refused-{errcode}")

    assert (status, body["code"]) == (400, "wechat_code_invalid")
    assert body["detail"]
    assert not User.objects.exists()


@pytest.mark.parametrize(
    "code", ["busy", "garbage", "no-openid", "surrogate-openid", "http-502", "refused-45011"]
)
def test_wechat_trouble_is_503_wechat_unavailable(wechat, code):
    status, body = sign_in(code)

    assert (status, body["code"]) == (503, "wechat_unavailable")
    assert not User.objects.exists()


def test_a_silent_wechat_times_out_as_503(wechat):
    started = time.monotonic()
    status, body = sign_in("slow")

    assert (status, body["code"]) == (503, "wechat_unavailable")
    assert time.monotonic() - started < 1.5


def test_an_unreachable_wechat_is_503(wechat, settings):
    settings.VOICEROOM_WECHAT_API_BASE = f"http://127.0.0.1:{free_port()}"

    status, body = sign_in("ok-openid-D")

    assert (status, body["code"]) == (503, "wechat_unavailable")


@pytest.mark.parametrize("missing", ["VOICEROOM_WECHAT_APP_ID", "VOICEROOM_WECHAT_APP_SECRET"])
def test_without_app_id_or_secret_the_endpoint_says_not_configured(wechat, settings, missing):
    setattr(settings, missing, "")

    status, body = sign_in("ok-openid-E")

    assert (status, body["code"]) == (503, "wechat_not_configured")
    assert wechat.requests == []


@pytest.mark.parametrize("code", [None, "", "x" * 129, ["ok-openid-X"], {"a": 1}])
def test_a_missing_or_bad_code_is_400_invalid(wechat, code):
    status, body = sign_in(code)

    assert (status, body["code"]) == (400, "invalid")
    assert "code" in body["fields"]
    assert wechat.requests == []


def test_a_disabled_account_cannot_sign_in(wechat):
    _, body = sign_in("ok-openid-F")
    User.objects.filter(pk=body["user"]["id"]).update(is_active=False)

    status, body = sign_in("ok-openid-F")

    assert (status, body["code"]) == (403, "account_disabled")


def test_the_secret_and_session_key_never_reach_a_log(wechat, logs):
    for code in ["ok-openid-G", "refused-40029", "busy", "garbage", "http-502", "slow"]:
        sign_in(code)

    assert "wechat" in logs.text  # the failures were logged...
    assert SECRET not in logs.text  # ...without the secret
    assert "sk-not-for-logs" not in logs.text
    for record in logs.records:
        assert SECRET not in repr(record.args)
        assert record.exc_info is None or SECRET not in repr(record.exc_info[1])
