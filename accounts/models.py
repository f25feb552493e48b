"""The custom User model."""

from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """A WidgetApp user; streaming access comes from approved groups."""

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
