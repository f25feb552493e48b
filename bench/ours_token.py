"""Fallback token for ours while `issue_token` does not exist (run with `manage.py shell -c`).

Writes an oauth2_provider AccessToken for the bench user directly; the token is the last line printed.
"""

import os
import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_application_model

user = get_user_model().objects.get(username="bench")
application, _ = get_application_model().objects.get_or_create(
    name="bench",
    defaults={
        "user": user,
        "client_type": "confidential",
        "authorization_grant_type": "client-credentials",
    },
)
token = get_access_token_model().objects.create(
    user=user,
    application=application,
    token=secrets.token_urlsafe(32),
    expires=timezone.now() + timedelta(days=1),
    scope=os.environ["BENCH_SCOPE"],
)
print(token.token)
