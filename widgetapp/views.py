"""The demo pages: the home page, and the live page that gets a token (PKCE) and streams."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from accounts.services import user_is_approved
from streaming import services
from widgetapp.widgets.browser_client import BROWSER_CLIENT_ID

# Staff links from the live page to the admin's live views (label, URL name).
ADMIN_LINKS = [
    ("Live sessions", "admin:streaming_streamsession_changelist"),
    ("Workers", "admin:streaming_workerprocess_changelist"),
    ("Load dashboard", "admin:streaming_dashboard"),
]


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


@login_required
def live(request: HttpRequest) -> HttpResponse:
    """The live page; also the OAuth redirect URI (`/app/callback`), where its script takes the code."""
    admin_links = [(label, reverse(name)) for label, name in ADMIN_LINKS]
    context = {"config": page_config(request), "services": services.names(), "admin_links": admin_links}
    return render(request, "app.html", context)


def page_config(request: HttpRequest) -> dict[str, Any]:
    """What the page's script needs: the OAuth client, endpoints and the user it runs for."""
    names = services.names()
    return {
        "clientId": BROWSER_CLIENT_ID,
        "scope": " ".join(f"stream:{name}" for name in names),
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
    }
