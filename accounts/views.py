"""The consent page: DOT's authorization view, refusing unapproved users before it asks anything."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from oauth2_provider.exceptions import OAuthToolkitError
from oauth2_provider.views import AuthorizationView
from oauthlib.oauth2.rfc6749 import errors

from accounts.oauth_validators import granted_scopes
from accounts.signals import authorization_refused


class ApprovedAuthorizationView(AuthorizationView):
    """Shows only the scopes the signed-in user may be granted; the validator re-checks on consent."""

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
