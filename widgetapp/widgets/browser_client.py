"""The live page's OAuth client: one public PKCE client whose redirect URIs follow the site's origins."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from oauth2_provider.models import Application

BROWSER_CLIENT_ID = "widgetapp-browser"
#: Where the page takes the authorization code (the `app-callback` URL).
CALLBACK_PATH = "/app/callback"


def origin_check(origin: str) -> str:
    """`origin` without a trailing slash; https only, unless DJANGO_DEBUG=1 also allows http."""
    parts = urlsplit(origin.strip().rstrip("/"))
    schemes = {"https", "http"} if settings.DEBUG else {"https"}
    if parts.scheme not in schemes or not parts.netloc or parts.path or parts.query or parts.fragment:
        allowed = " or ".join(sorted(schemes))
        raise ValidationError(f"{origin!r} is not an origin ({allowed}://host[:port], nothing after it).")
    return f"{parts.scheme}://{parts.netloc}"


def browser_client_register(*, origins: Iterable[str]) -> Application:
    """Create or update the page's client: it may redirect to `<origin>/app/callback` of each origin."""
    checked = list(dict.fromkeys(origin_check(origin) for origin in origins))
    if not checked:
        raise ValidationError(
            "Name at least one public origin (PUBLIC_ORIGINS, e.g. https://widgets.example.com)."
        )
    application, _ = Application.objects.update_or_create(
        client_id=BROWSER_CLIENT_ID,
        defaults={
            "name": "WidgetApp browser page",
            "client_type": Application.CLIENT_PUBLIC,
            "authorization_grant_type": Application.GRANT_AUTHORIZATION_CODE,
            "skip_authorization": False,
            "algorithm": "",
            "redirect_uris": " ".join(f"{origin}{CALLBACK_PATH}" for origin in checked),
        },
    )
    return application
