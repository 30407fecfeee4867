"""WeChat's `jscode2session`: turns the code of a mini-program's `wx.login()` into an openid.

    GET {VOICEROOM_WECHAT_API_BASE}/sns/jscode2session
        ?appid=...&secret=...&js_code=...&grant_type=authorization_code
    -> {"openid", "session_key", "unionid"?}  or  {"errcode", "errmsg"}

WeChat wants the app secret in the query string, so the URL is never logged and errors
are raised without their cause (whose text or traceback could carry it): logs name only
WeChat's errcode or the kind of network failure.
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from django.conf import settings

from voiceroom.errors import ApplicationError, ServiceUnavailable
from voiceroom.text import is_utf8_text

logger = logging.getLogger(__name__)

# errcodes that mean "WeChat is busy, try later", not "this code is bad":
# -1 system busy, 45011 the app's per-minute API quota is spent.
BUSY_ERRCODES = frozenset({-1, 45011})
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True)
class WechatSession:
    openid: str
    unionid: str


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "WeChat did not answer the sign-in request; try again.", code="wechat_unavailable"
    )


def code_to_session(*, code: str) -> WechatSession:
    """Ask WeChat who the code belongs to. Raises ApplicationError with a stable code:
    503 `wechat_not_configured`, 503 `wechat_unavailable`, 400 `wechat_code_invalid`."""
    app_id = settings.VOICEROOM_WECHAT_APP_ID
    secret = settings.VOICEROOM_WECHAT_APP_SECRET
    if not app_id or not secret:
        raise ServiceUnavailable(
            "WeChat sign-in is not configured on this server.", code="wechat_not_configured"
        )
    query = urllib.parse.urlencode(
        {"appid": app_id, "secret": secret, "js_code": code, "grant_type": "authorization_code"}
    )
    url = f"{settings.VOICEROOM_WECHAT_API_BASE.rstrip('/')}/sns/jscode2session?{query}"
    try:
        with urllib.request.urlopen(url, timeout=settings.VOICEROOM_WECHAT_TIMEOUT_S) as answer:
            raw = answer.read(MAX_ANSWER_BYTES)
    except urllib.error.HTTPError as exc:
        logger.warning("wechat jscode2session answered HTTP %s", exc.code)
        raise _unavailable() from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        logger.warning("wechat jscode2session unreachable (%s)", type(reason).__name__)
        raise _unavailable() from None

    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        logger.warning("wechat jscode2session answered something that is not a JSON object")
        raise _unavailable()
    try:
        errcode = int(data.get("errcode") or 0)
    except (TypeError, ValueError):
        logger.warning("wechat jscode2session answered a malformed errcode")
        raise _unavailable() from None
    if errcode in BUSY_ERRCODES:
        logger.warning("wechat jscode2session is busy (errcode %s)", errcode)
        raise _unavailable()
    if errcode != 0:
        logger.info("wechat jscode2session refused the code (errcode %s)", errcode)
        raise ApplicationError(
            "WeChat refused this login code (expired or already used): call wx.login() again.",
            code="wechat_code_invalid",
        )
    openid = data.get("openid")
    unionid = data.get("unionid")
    # An id that is not UTF-8 text (a lone surrogate escape) could not be stored.
    if not isinstance(openid, str) or not openid or len(openid) > 128 or not is_utf8_text(openid):
        logger.warning("wechat jscode2session answered without a usable openid")
        raise _unavailable()
    if not isinstance(unionid, str) or len(unionid) > 128 or not is_utf8_text(unionid):
        unionid = ""
    return WechatSession(openid=openid, unionid=unionid)
