import pytest
from rest_framework.test import APIClient

from accounts.models import User
from tests.factories import PASSWORD, UserFactory, token_for
from tests.throttling import set_rates

pytestmark = pytest.mark.django_db

USER_KEYS = {"id", "username", "display_name"}


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def authed(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


# --- register ----------------------------------------------------------------------------


def test_register_answers_user_and_a_working_token():
    response = APIClient().post(
        "/api/auth/register",
        {"username": "alice", "password": PASSWORD, "display_name": "Alice A."},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body["user"]) >= USER_KEYS
    assert body["user"]["username"] == "alice"
    assert body["user"]["display_name"] == "Alice A."
    assert "password" not in body["user"]
    me = authed(body["token"]).get("/api/auth/me")
    assert me.status_code == 200
    assert me.json()["id"] == body["user"]["id"]


def test_register_display_name_is_optional():
    response = APIClient().post(
        "/api/auth/register", {"username": "bob", "password": PASSWORD}, format="json"
    )

    assert response.status_code == 201, response.content
    assert response.json()["user"]["display_name"] == ""


def test_register_refuses_a_taken_username():
    UserFactory(username="alice")

    response = APIClient().post(
        "/api/auth/register", {"username": "alice", "password": PASSWORD}, format="json"
    )

    assert_error(response, 400, "username_taken")
    assert User.objects.filter(username="alice").count() == 1


def test_register_refuses_a_weak_password_with_field_messages():
    response = APIClient().post(
        "/api/auth/register", {"username": "alice", "password": "123"}, format="json"
    )

    body = assert_error(response, 400, "invalid")
    assert body["fields"]["password"]
    assert not User.objects.filter(username="alice").exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"password": PASSWORD}, "username"),
        ({"username": "alice"}, "password"),
        ({"username": "", "password": PASSWORD}, "username"),
        ({"username": "bad name!", "password": PASSWORD}, "username"),
        ({"username": "a" * 151, "password": PASSWORD}, "username"),
        ({"username": "alice", "password": PASSWORD, "display_name": "d" * 65}, "display_name"),
        ({"username": ["alice"], "password": PASSWORD}, "username"),
    ],
)
def test_register_validates_fields(payload, field):
    response = APIClient().post("/api/auth/register", payload, format="json")

    body = assert_error(response, 400, "invalid")
    assert field in body["fields"]


def test_register_refuses_malformed_json():
    response = APIClient().post(
        "/api/auth/register", '{"username": "alice",', content_type="application/json"
    )

    assert_error(response, 400, "malformed_request")


def test_register_works_despite_a_stale_authorization_header():
    response = authed("stale-token").post(
        "/api/auth/register", {"username": "alice", "password": PASSWORD}, format="json"
    )

    assert response.status_code == 201, response.content


# --- login -------------------------------------------------------------------------------


def test_login_answers_user_and_token():
    user = UserFactory(username="alice")

    response = APIClient().post(
        "/api/auth/login", {"username": "alice", "password": PASSWORD}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["user"]["id"] == user.pk
    assert set(body["user"]) >= USER_KEYS
    assert authed(body["token"]).get("/api/auth/me").status_code == 200


@pytest.mark.parametrize(
    ("username", "password"), [("alice", "not the password"), ("nobody", PASSWORD)]
)
def test_login_refuses_bad_credentials(username, password):
    UserFactory(username="alice")

    response = APIClient().post(
        "/api/auth/login", {"username": username, "password": password}, format="json"
    )

    body = assert_error(response, 400, "invalid_credentials")
    assert "token" not in body


def test_login_missing_fields_is_invalid():
    response = APIClient().post("/api/auth/login", {"username": "alice"}, format="json")

    body = assert_error(response, 400, "invalid")
    assert "password" in body["fields"]


def test_login_is_throttled(settings):
    set_rates(settings, login="3/min")
    UserFactory(username="alice")
    client = APIClient()
    wrong = {"username": "alice", "password": "guess"}

    for _ in range(3):
        assert client.post("/api/auth/login", wrong, format="json").status_code == 400

    right = {"username": "alice", "password": PASSWORD}
    response = client.post("/api/auth/login", right, format="json")
    assert_error(response, 429, "throttled")
    assert "Retry-After" in response.headers


# --- logout and me -----------------------------------------------------------------------


def test_logout_makes_the_token_stop_working():
    user = UserFactory()
    client = authed(token_for(user))
    assert client.get("/api/auth/me").status_code == 200

    response = client.post("/api/auth/logout")

    assert response.status_code == 204
    assert_error(client.get("/api/auth/me"), 401, "authentication_failed")
    assert_error(client.post("/api/auth/logout"), 401, "authentication_failed")


def test_logout_needs_a_token():
    assert_error(APIClient().post("/api/auth/logout"), 401, "not_authenticated")


def test_me_answers_the_signed_in_user():
    user = UserFactory(username="dora", display_name="Dora")

    response = authed(token_for(user)).get("/api/auth/me")

    assert response.status_code == 200
    assert response.json() == {"id": user.pk, "username": "dora", "display_name": "Dora"}


@pytest.mark.parametrize(
    "header", ["Token nonsense", "Bearer abc", "Token", "Basic dXNlcjpwYXNz", "Token a b"]
)
def test_me_refuses_an_invalid_authorization_header(header):
    UserFactory()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get("/api/auth/me")

    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_me_needs_a_token():
    assert_error(APIClient().get("/api/auth/me"), 401, "not_authenticated")


def test_auth_paths_also_answer_with_a_trailing_slash():
    user = UserFactory()

    assert authed(token_for(user)).get("/api/auth/me/").status_code == 200


def test_a_forged_forwarded_for_does_not_escape_the_login_throttle(settings):
    # No trusted proxy (VOICEROOM_TRUSTED_PROXIES=0): X-Forwarded-For is the client's word.
    set_rates(settings, login="2/min")
    settings.VOICEROOM_TRUSTED_PROXIES = 0
    UserFactory(username="alice")
    wrong = {"username": "alice", "password": "guess"}
    for i in range(2):
        client = APIClient(HTTP_X_FORWARDED_FOR=f"198.51.100.{i}")
        assert client.post("/api/auth/login", wrong, format="json").status_code == 400
    client = APIClient(HTTP_X_FORWARDED_FOR="198.51.100.99")
    assert_error(client.post("/api/auth/login", wrong, format="json"), 429, "throttled")


def test_behind_one_trusted_proxy_each_client_address_has_its_own_budget(settings):
    set_rates(settings, login="2/min")
    settings.VOICEROOM_TRUSTED_PROXIES = 1
    UserFactory(username="alice")
    wrong = {"username": "alice", "password": "guess"}
    first = APIClient(HTTP_X_FORWARDED_FOR="198.51.100.1")
    for _ in range(2):
        assert first.post("/api/auth/login", wrong, format="json").status_code == 400
    assert_error(first.post("/api/auth/login", wrong, format="json"), 429, "throttled")
    # Another client behind the same proxy is not throttled by the first one's attempts;
    # a value the client prepended itself is not the one read.
    second = APIClient(HTTP_X_FORWARDED_FOR="203.0.113.5, 198.51.100.2")
    assert second.post("/api/auth/login", wrong, format="json").status_code == 400


# --- development sign-in ------------------------------------------------------------------


def test_dev_sign_in_is_off_without_debug(settings):
    settings.DEBUG = False
    response = APIClient().post(
        "/api/auth/dev", {"username": "devuser", "password": "a-Long-pass-123"}, format="json"
    )
    assert_error(response, 404, "not_found")
    assert not User.objects.filter(username="devuser").exists()


def test_dev_sign_in_creates_then_logs_in_under_debug(settings):
    settings.DEBUG = True
    body = {"username": "devuser", "password": "a-Long-pass-123"}
    first = APIClient().post("/api/auth/dev", body, format="json")
    assert first.status_code == 200, first.content
    assert first.json()["user"]["username"] == "devuser"
    again = APIClient().post("/api/auth/dev", body, format="json")
    assert again.status_code == 200, again.content
    assert again.json()["user"]["id"] == first.json()["user"]["id"]
    assert authed(again.json()["token"]).get("/api/auth/me").status_code == 200
    wrong = APIClient().post(
        "/api/auth/dev", {**body, "password": "not-the-one-123"}, format="json"
    )
    assert_error(wrong, 400, "invalid_credentials")
