from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """The account of a person who talks in rooms."""

    display_name = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return self.username

    @property
    def shown_name(self) -> str:
        return self.display_name or self.username


class WechatIdentity(models.Model):
    """A WeChat mini-program user (openid from jscode2session), signed in as `user`."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="wechat")
    # openids are 28 characters today; WeChat documents no maximum, so leave room.
    openid = models.CharField(max_length=128, unique=True)
    unionid = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "WeChat identity"
        verbose_name_plural = "WeChat identities"

    def __str__(self) -> str:
        return f"{self.openid} -> {self.user_id}"
