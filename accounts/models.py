"""The custom User model and the groups approved for streaming."""

from django.contrib.auth.models import AbstractUser, Group
from django.db import models


class User(AbstractUser):
    """A WidgetApp user; streaming access comes from approved groups."""

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"


class ApprovedGroup(models.Model):
    """A Django group whose active members may get OAuth tokens for the services listed here."""

    group = models.OneToOneField(Group, on_delete=models.CASCADE, related_name="approval")
    services = models.JSONField(
        default=list, blank=True, help_text="Services members may follow (scope stream:<service>)."
    )
    publish_services = models.JSONField(
        default=list, blank=True, help_text="Services members may publish to (scope publish:<service>)."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["group__name"]
        verbose_name = "approved group"

    def __str__(self) -> str:
        return self.group.name
