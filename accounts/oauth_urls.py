"""The OAuth 2.0 endpoints we serve under /o/: authorize, token, revoke_token, introspect, metadata."""

from django.urls import path
from oauth2_provider import urls as dot_urls
from oauth2_provider import views as dot_views

from accounts.views import ApprovedAuthorizationView

app_name = "oauth2_provider"

# DOT's application self-registration, device, OIDC and DCR routes are left out on purpose:
# admins register applications, and every grant we offer goes through the views below.
urlpatterns = [
    *dot_urls.metadata_urlpatterns,
    path("authorize/", ApprovedAuthorizationView.as_view(), name="authorize"),
    path("token/", dot_views.TokenView.as_view(), name="token"),
    path("revoke_token/", dot_views.RevokeTokenView.as_view(), name="revoke-token"),
    path("introspect/", dot_views.IntrospectTokenView.as_view(), name="introspect"),
]
