"""DOT's request validator plus the approval rules, checked wherever a code or token is issued."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.common import Request
from oauthlib.oauth2.rfc6749 import errors

from accounts import services
from accounts.signals import token_rotation


def granted_scopes(*, user: Any, scopes: Iterable[str], request: Request | None = None) -> list[str]:
    """The requested scopes `user` may be granted; raise the standard OAuth error otherwise."""
    if not services.user_is_approved(user=user):
        raise errors.AccessDeniedError(
            description="This account is not an active member of a group approved for streaming.",
            request=request,
        )
    granted = services.user_narrow_scopes(user=user, scopes=scopes)
    if not granted:
        raise errors.InvalidScopeError(
            description="None of the requested scopes is allowed for this account.", request=request
        )
    return granted


class ApprovedGroupsValidator(OAuth2Validator):
    """Tokens only for approved users (or applications of approved owners), with allowed scopes only."""

    def save_bearer_token(self, token: dict[str, Any], request: Request, *args: Any, **kwargs: Any) -> Any:
        # A refresh deletes the previous access token; mark that as a rotation so that live
        # connections using it are not treated as revoked (they swap the token in band).
        if request.grant_type == "refresh_token":
            with token_rotation():
                return super().save_bearer_token(token, request, *args, **kwargs)
        return super().save_bearer_token(token, request, *args, **kwargs)

    def validate_scopes(
        self, client_id: str, scopes: list[str], client: Any, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        if request.grant_type == "client_credentials":
            if not services.application_is_approved(application=client):
                raise errors.UnauthorizedClientError(
                    description="The owner of this application is not in an approved group.", request=request
                )
            holder = client.user
        elif request.user is None:
            # The first GET of /o/authorize/ carries no user: the authorization view narrows the
            # scopes for the signed-in user, and the consent POST comes back here with the user.
            return True
        else:
            holder = request.user
        request.scopes = granted_scopes(user=holder, scopes=scopes, request=request)
        return True

    def validate_code(
        self, client_id: str, code: str, client: Any, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        if not super().validate_code(client_id, code, client, request, *args, **kwargs):
            return False
        request.scopes = services.user_narrow_scopes(user=request.user, scopes=request.scopes)
        return bool(request.scopes)

    def validate_refresh_token(
        self, refresh_token: str, client: Any, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        if not super().validate_refresh_token(refresh_token, client, request, *args, **kwargs):
            return False
        return bool(self.get_original_scopes(refresh_token, request))

    def get_original_scopes(
        self, refresh_token: str, request: Request, *args: Any, **kwargs: Any
    ) -> list[str]:
        """The refreshed token keeps only the original scopes its user's groups still allow."""
        original = super().get_original_scopes(refresh_token, request, *args, **kwargs)
        return services.user_narrow_scopes(user=request.user, scopes=original.split() if original else [])
