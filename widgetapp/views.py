"""The demo pages: the home page, and the live page that gets a token (PKCE) and streams."""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.services import user_allowed_scopes, user_is_approved
from streaming import services
from streaming.delivery.publish import publish
from widgetapp.widgets.browser_client import BROWSER_CLIENT_ID
from widgetapp.widgets.service import widgets_listing

# Staff links from the live page to the admin's live views (label, URL name).
ADMIN_LINKS = [
    ("Live sessions", "admin:streaming_streamsession_changelist"),
    ("Workers", "admin:streaming_workerprocess_changelist"),
    ("Load dashboard", "admin:streaming_dashboard"),
]

#: A widget-ish cog in the header's colour, served as /favicon.ico and linked from every page.
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    '<rect width="32" height="32" rx="7" fill="#1d2591"/>'
    '<circle cx="16" cy="16" r="8" fill="none" stroke="#fff" stroke-width="4"/>'
    '<circle cx="16" cy="16" r="2.5" fill="#fff"/></svg>'
)


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


@login_required
def live(request: HttpRequest) -> HttpResponse:
    """The live page; also the OAuth redirect URI (`/app/callback`), where its script takes the code."""
    admin_links = [(label, reverse(name)) for label, name in ADMIN_LINKS]
    context = {
        "config": page_config(request),
        "services": streamable(request),
        "admin_links": admin_links,
        "widgets_admin": reverse("admin:widgets_widget_changelist"),
        "widgets": first_paint(request),
    }
    return render(request, "app.html", context)


def first_paint(request: HttpRequest) -> dict[str, Any] | None:
    """The widgets with their stream position, rendered into the page when the user may see them.

    The page shows them at once and subscribes from that position: no list round trip, no flash of
    an empty table; it fetches the pages after this first one over the websocket. None for a user
    the websocket would refuse the widgets to.
    """
    user = request.user
    if not user_is_approved(user=user) or "stream:widgets" not in user_allowed_scopes(user=user):
        return None
    first = async_to_sync(widgets_listing)()
    first["widgets"].sort(key=lambda widget: (widget["name"], widget["id"]))  # the table's order
    return first


def streamable(request: HttpRequest) -> list[str]:
    """The services the user's groups allow (all of them for an outsider, who is refused anyway)."""
    allowed = user_allowed_scopes(user=request.user)
    names = [name for name in services.names() if f"stream:{name}" in allowed]
    return names or services.names()


@login_required
@require_POST
def test_notification(request: HttpRequest) -> JsonResponse:
    """Send the signed-in user a notification, to watch one arrive on the live page."""
    if "stream:notifications" not in user_allowed_scopes(user=request.user):
        return JsonResponse({"error": "forbidden", "message": "Notifications are not allowed."}, status=403)
    at = timezone.localtime().strftime("%H:%M:%S")
    publish("notifications", {"message": f"Test notification sent at {at}."}, topic=str(request.user.pk))
    return JsonResponse({"sent": True}, status=202)


def favicon(request: HttpRequest) -> HttpResponse:
    """The site icon at the address browsers ask for on every page (the admin's too)."""
    return HttpResponse(FAVICON, content_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})


def page_config(request: HttpRequest) -> dict[str, Any]:
    """What the page's script needs: the OAuth client, endpoints and the user it runs for."""
    return {
        "clientId": BROWSER_CLIENT_ID,
        "scope": " ".join(f"stream:{name}" for name in streamable(request)),
        "authorizeUrl": reverse("oauth2_provider:authorize"),
        "tokenUrl": reverse("oauth2_provider:token"),
        "revokeUrl": reverse("oauth2_provider:revoke-token"),
        "redirectUri": request.build_absolute_uri(reverse("app-callback")),
        "callbackPath": reverse("app-callback"),
        "appUrl": reverse("app"),
        "logoutUrl": reverse("logout"),
        "websocketPath": "/ws/stream/",
        "user": request.user.get_username(),
        "approved": user_is_approved(user=request.user),
        "testNotificationUrl": reverse("app-test-notification"),
    }
