import pytest
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework.authtoken.models import Token

from accounts import services
from accounts.models import User
from tests.factories import PASSWORD, UserFactory
from voiceroom.errors import ApplicationError

pytestmark = pytest.mark.django_db


def test_register_creates_user_with_hashed_password_and_token():
    user, token = services.user_register(username="alice", password=PASSWORD, display_name="Al")

    stored = User.objects.get(username="alice")
    assert stored == user
    assert stored.display_name == "Al"
    assert stored.password != PASSWORD
    assert stored.check_password(PASSWORD)
    assert Token.objects.get(user=stored).key == token.key


def test_register_refuses_taken_username_case_insensitively():
    UserFactory(username="alice")

    for name in ("alice", "ALICE"):
        with pytest.raises(ApplicationError) as caught:
            services.user_register(username=name, password=PASSWORD)
        assert caught.value.code == "username_taken"
    assert User.objects.count() == 1


@pytest.mark.parametrize("password", ["short", "12345678901", "password123", "alicealice"])
def test_register_runs_django_password_validators(password):
    with pytest.raises(DjangoValidationError) as caught:
        services.user_register(username="alicealice", password=password)

    assert "password" in caught.value.message_dict
    assert not User.objects.filter(username="alicealice").exists()


def test_login_returns_the_users_token_and_records_last_login():
    user, registered = services.user_register(username="bob", password=PASSWORD)
    assert user.last_login is None

    logged_in, token = services.user_login(username="bob", password=PASSWORD)

    assert logged_in == user
    assert token.key == registered.key
    user.refresh_from_db()
    assert user.last_login is not None


@pytest.mark.parametrize(
    ("username", "password"), [("bob", "wrong password!"), ("nobody", PASSWORD), ("bob", "")]
)
def test_login_refuses_bad_credentials(username, password):
    UserFactory(username="bob")

    with pytest.raises(ApplicationError) as caught:
        services.user_login(username=username, password=password)
    assert caught.value.code == "invalid_credentials"
    assert caught.value.status_code == 400


def test_login_refuses_a_deactivated_account():
    UserFactory(username="bob", is_active=False)

    with pytest.raises(ApplicationError) as caught:
        services.user_login(username="bob", password=PASSWORD)
    assert caught.value.code == "invalid_credentials"


def test_logout_deletes_the_token_and_login_issues_a_new_one():
    user, token = services.user_register(username="carol", password=PASSWORD)

    services.user_logout(user=user)

    assert not Token.objects.filter(key=token.key).exists()
    _, fresh = services.user_login(username="carol", password=PASSWORD)
    assert fresh.key != token.key
