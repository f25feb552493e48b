"""The consent page: DOT's authorization view, refusing unapproved users before it asks anything."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from csp.decorators import csp_update
from django.http import HttpRequest, HttpResponse
from oauth2_provider.exceptions import OAuthToolkitError
from oauth2_provider.views import AuthorizationView
from oauthlib.oauth2.rfc6749 import errors

from accounts.oauth_validators import granted_scopes
from accounts.signals import authorization_refused


def redirect_origin(form: Any) -> str | None:
    """`scheme://host[:port]` of the redirect URI the consent form posts, if it has one."""
    parts = urlsplit(form["redirect_uri"].value() or "") if form is not None else None
    return f"{parts.scheme}://{parts.netloc}" if parts and parts.scheme and parts.netloc else None


class ApprovedAuthorizationView(AuthorizationView):
    """Shows only the scopes the signed-in user may be granted; the validator re-checks on consent."""

    def render_to_response(self, context: dict[str, Any], **kwargs: Any) -> HttpResponse:
        """The consent form's answer redirects to the client: its origin joins CSP form-action."""
        render = super().render_to_response
        origin = redirect_origin(context.get("form"))
        if origin:
            render = csp_update({"form-action": [origin]})(render)
        return render(context, **kwargs)

    def validate_authorization_request(self, request: HttpRequest) -> tuple[list[str], dict[str, Any]]:
        scopes, credentials = super().validate_authorization_request(request)
        try:
            if credentials.get("code_challenge_method") != "S256":
                # DOT refuses "plain" only when the code is created; refuse before asking for consent.
                raise errors.UnsupportedCodeChallengeMethodError(
                    description='Use code_challenge_method "S256".'
                )
            return granted_scopes(user=request.user, scopes=scopes), credentials
        except errors.OAuth2Error as error:
            authorization_refused.send(
                sender=type(self),
                user=request.user,
                client_id=credentials.get("client_id", ""),
                remote_addr=request.META.get("REMOTE_ADDR", ""),
                error=error.error,
                description=error.description,
            )
            error.state = credentials.get("state")
            raise OAuthToolkitError(error=error, redirect_uri=credentials["redirect_uri"]) from error
