"""Who may view one widget: active staff, and the active users the widget names as its viewers.

The rule is Django's object permission `widgets.view_widget` (`user.has_perm(VIEW_WIDGET, widget)`),
answered by the backend below; `widgets_visible_to` is the same rule as a queryset filter.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import BaseBackend
from django.db.models import QuerySet

from widgetapp.widgets.models import Widget

VIEW_WIDGET = "widgets.view_widget"


class WidgetPermissionBackend(BaseBackend):
    """Answers `widgets.view_widget` for one Widget; every other permission is left to the others."""

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        if perm != VIEW_WIDGET or not isinstance(obj, Widget):
            return False
        return widgets_visible_to(user_obj).filter(pk=obj.pk).exists()


def widgets_visible_to(user: Any) -> QuerySet[Widget]:
    """The widgets `user` may view: the rule itself, as a queryset filter."""
    if not user.is_active:
        return Widget.objects.none()
    return Widget.objects.all() if user.is_staff else Widget.objects.filter(viewers=user)
