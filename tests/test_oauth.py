"""OAuth 2.0 for approved groups: the real DOT views, the issuance rules, and the commands."""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from collections.abc import Callable, Iterator
from io import StringIO
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application

from accounts import services
from accounts.models import ApprovedGroup, User
from accounts.signals import approval_changed

pytestmark = pytest.mark.django_db

PASSWORD = "a long test password"
REDIRECT_URI = "http://127.0.0.1:8000/app/callback"
SERVICES = ("widgets", "notifications", "load")


@pytest.fixture(autouse=True)
def known_scopes(settings: Any) -> None:
    """The scopes a registry of widgets/notifications/load would list, independent of `streaming`."""
    scopes = {f"{kind}:{name}": f"{kind} {name}" for name in SERVICES for kind in ("stream", "publish")}
    settings.OAUTH2_PROVIDER = {
        **settings.OAUTH2_PROVIDER,
        "SCOPES_BACKEND_CLASS": "oauth2_provider.scopes.SettingsScopes",
        "SCOPES": scopes,
        "DEFAULT_SCOPES": [scope for scope in scopes if scope.startswith("stream:")],
    }


@pytest.fixture
def streamers() -> Group:
    group = Group.objects.create(name="streamers")
    services.group_approve(group=group, services=["widgets", "notifications"], publish_services=["widgets"])
    return group


def make_user(username: str, *groups: Group) -> User:
    user = User.objects.create_user(username=username, password=PASSWORD)
    user.groups.add(*groups)
    return user


@pytest.fixture
def member(streamers: Group) -> User:
    return make_user("member", streamers)


@pytest.fixture
def outsider() -> User:
    return make_user("outsider")


@pytest.fixture
def browser_app() -> Application:
    return Application.objects.create(
        name="browser page",
        client_id="browser-page",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=REDIRECT_URI,
        algorithm="",
    )


def confidential_app(
    owner: User, grant: str = Application.GRANT_CLIENT_CREDENTIALS
) -> tuple[Application, str]:
    """A confidential application and its plaintext secret (DOT stores it hashed)."""
    secret = secrets.token_urlsafe(32)
    app = Application.objects.create(
        name=f"api of {owner.username}",
        user=owner,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=grant,
        client_secret=secret,
    )
    return app, secret


def basic_auth(app: Application, secret: str) -> dict[str, str]:
    pair = base64.b64encode(f"{app.client_id}:{secret}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {pair}"}


@pytest.fixture
def signed_in(member: User) -> Client:
    client = Client()
    client.force_login(member)
    return client


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_params(
    app: Application, challenge: str | None, scope: str, method: str = "S256"
) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": REDIRECT_URI,
        "state": "state-123",
    }
    if scope:
        params["scope"] = scope
    if challenge is not None:
        params |= {"code_challenge": challenge, "code_challenge_method": method}
    return params


def redirect_query(response: Any) -> dict[str, str]:
    assert response.status_code == 302, response.content
    location = response["Location"]
    assert location.startswith(REDIRECT_URI)
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def consent(client: Client, params: dict[str, str]) -> dict[str, str]:
    """Open the consent page, press Allow with its hidden fields; the redirect's query parameters."""
    page = client.get("/o/authorize/", params)
    assert page.status_code == 200, page.content
    data = {name: value for name, value in page.context["form"].initial.items() if value is not None}
    return redirect_query(client.post("/o/authorize/", {**data, "allow": "Allow"}))


def token_post(client: Client, data: dict[str, str], **headers: str) -> tuple[int, dict[str, Any]]:
    response = client.post("/o/token/", data, **headers)
    return response.status_code, response.json()


def exchange(app: Application, code: str, verifier: str) -> tuple[int, dict[str, Any]]:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": app.client_id,
        "code_verifier": verifier,
    }
    return token_post(Client(), data)


@pytest.fixture
def sign_in_flow(signed_in: Client, browser_app: Application) -> Callable[..., dict[str, Any]]:
    """Run authorize → consent → code → token for the member; returns the token response."""

    def run(scope: str = "stream:widgets stream:notifications") -> dict[str, Any]:
        verifier, challenge = pkce_pair()
        query = consent(signed_in, authorize_params(browser_app, challenge, scope))
        status, body = exchange(browser_app, query["code"], verifier)
        assert status == 200, body
        return body | {"code": query["code"], "state": query["state"], "iss": query.get("iss")}

    return run


def refresh(app: Application, refresh_token: str) -> tuple[int, dict[str, Any]]:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": app.client_id}
    return token_post(Client(), data)


def introspect(token: str, resource_server: tuple[Application, str]) -> dict[str, Any]:
    response = Client().post("/o/introspect/", {"token": token}, **basic_auth(*resource_server))
    assert response.status_code == 200
    return response.json()


# --- the browser page's flow ---------------------------------------------------------------


def test_full_authorization_code_flow_with_pkce(
    sign_in_flow: Callable[..., dict[str, Any]],
    browser_app: Application,
    member: User,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    resource_server = confidential_app(member)
    first = sign_in_flow()
    assert first["state"] == "state-123"
    assert first["iss"], "RFC 9207 iss parameter is in the authorization response"
    assert first["scope"] == "stream:widgets stream:notifications"
    assert first["expires_in"] == 900
    seen = introspect(first["access_token"], resource_server)
    assert seen["active"] and seen["username"] == "member" and seen["client_id"] == browser_app.client_id

    status, second = refresh(browser_app, first["refresh_token"])
    assert status == 200, second
    assert second["refresh_token"] != first["refresh_token"]
    assert second["scope"] == first["scope"]

    revoked = Client().post(
        "/o/revoke_token/", {"token": second["access_token"], "client_id": browser_app.client_id}
    )
    assert revoked.status_code == 200
    assert introspect(second["access_token"], resource_server) == {"active": False}

    secrets_seen = [first["code"], first["access_token"], first["refresh_token"], second["access_token"]]
    assert not [value for value in secrets_seen if value in caplog.text]


def test_tokens_are_stored_hashed(sign_in_flow: Callable[..., dict[str, Any]]) -> None:
    body = sign_in_flow()
    stored = AccessToken.objects.get()
    assert stored.token == "" and body["access_token"] not in stored.token_checksum


def test_reused_refresh_token_revokes_the_whole_family(
    sign_in_flow: Callable[..., dict[str, Any]], browser_app: Application
) -> None:
    first = sign_in_flow()
    status, second = refresh(browser_app, first["refresh_token"])
    assert status == 200
    assert refresh(browser_app, first["refresh_token"]) == (400, {"error": "invalid_grant"})
    assert refresh(browser_app, second["refresh_token"])[1]["error"] == "invalid_grant"


@pytest.mark.parametrize("challenge, method", [(None, "S256"), ("x" * 43, "plain")])
def test_missing_or_plain_pkce_is_refused(
    signed_in: Client, browser_app: Application, challenge: str | None, method: str
) -> None:
    params = authorize_params(browser_app, challenge, "stream:widgets", method)
    query = redirect_query(signed_in.get("/o/authorize/", params))
    assert query["error"] == "invalid_request"
    assert query["state"] == "state-123"


def test_plain_pkce_posted_straight_to_consent_gets_no_code(
    signed_in: Client, browser_app: Application
) -> None:
    params = authorize_params(browser_app, "x" * 43, "stream:widgets", "plain")
    query = redirect_query(signed_in.post("/o/authorize/", {**params, "allow": "Allow"}))
    assert query["error"] == "invalid_request" and "code" not in query


def test_unapproved_user_is_refused_at_authorize(outsider: User, browser_app: Application) -> None:
    client = Client()
    client.force_login(outsider)
    params = authorize_params(browser_app, pkce_pair()[1], "stream:widgets")
    assert redirect_query(client.get("/o/authorize/", params))["error"] == "access_denied"
    posted = redirect_query(client.post("/o/authorize/", {**params, "allow": "Allow"}))
    assert posted["error"] == "access_denied" and "code" not in posted


def test_consent_page_requires_sign_in(browser_app: Application) -> None:
    response = Client().get("/o/authorize/", authorize_params(browser_app, pkce_pair()[1], "stream:widgets"))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_consent_page_may_post_only_here_and_to_its_clients_redirect(
    signed_in: Client, browser_app: Application
) -> None:
    """The consent answer redirects to the client: CSP form-action allows that origin and no other."""
    page = signed_in.get("/o/authorize/", authorize_params(browser_app, pkce_pair()[1], "stream:widgets"))
    assert page.status_code == 200
    assert policy(page)["form-action"] == "'self' http://127.0.0.1:8000"
    assert policy(Client().get("/accounts/login/"))["form-action"] == "'self'"


def policy(response: Any) -> dict[str, str]:
    """The response's Content-Security-Policy, directive by directive."""
    return dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))


def leave_groups(user: User, group: Group) -> None:
    user.groups.clear()


def group_revoked(user: User, group: Group) -> None:
    services.group_revoke(group=group)


def deactivated(user: User, group: Group) -> None:
    User.objects.filter(pk=user.pk).update(is_active=False)


@pytest.mark.parametrize("lose_access", [leave_groups, group_revoked, deactivated])
def test_refresh_fails_once_the_user_is_no_longer_approved(
    sign_in_flow: Callable[..., dict[str, Any]],
    browser_app: Application,
    member: User,
    streamers: Group,
    lose_access: Callable[[User, Group], None],
) -> None:
    body = sign_in_flow()
    lose_access(member, streamers)
    assert refresh(browser_app, body["refresh_token"]) == (400, {"error": "invalid_grant"})


def test_code_exchange_fails_if_approval_ends_after_consent(
    signed_in: Client, browser_app: Application, streamers: Group
) -> None:
    verifier, challenge = pkce_pair()
    query = consent(signed_in, authorize_params(browser_app, challenge, "stream:widgets"))
    services.group_revoke(group=streamers)
    assert exchange(browser_app, query["code"], verifier) == (400, {"error": "invalid_grant"})


# --- scopes ----------------------------------------------------------------------------------


def test_requested_scopes_are_narrowed_to_what_the_groups_allow(
    signed_in: Client, browser_app: Application, sign_in_flow: Callable[..., dict[str, Any]]
) -> None:
    asked = "stream:widgets stream:load publish:widgets publish:notifications stream:unknown"
    page = signed_in.get("/o/authorize/", authorize_params(browser_app, pkce_pair()[1], asked))
    assert page.context["scopes"] == ["stream:widgets", "publish:widgets"]
    assert b"publish widgets" in page.content and b"stream load" not in page.content
    assert sign_in_flow(asked)["scope"] == "stream:widgets publish:widgets"


def test_no_scope_asked_gets_the_default_stream_scopes_allowed(
    sign_in_flow: Callable[..., dict[str, Any]],
) -> None:
    assert set(sign_in_flow("")["scope"].split()) == {"stream:widgets", "stream:notifications"}


def test_asking_only_for_disallowed_scopes_is_invalid_scope(
    signed_in: Client, browser_app: Application
) -> None:
    params = authorize_params(browser_app, pkce_pair()[1], "stream:load publish:load")
    query = redirect_query(signed_in.get("/o/authorize/", params))
    assert query["error"] == "invalid_scope" and query["state"] == "state-123"


def test_refresh_keeps_only_scopes_still_allowed(
    sign_in_flow: Callable[..., dict[str, Any]], browser_app: Application, streamers: Group
) -> None:
    body = sign_in_flow()
    services.group_approve(group=streamers, services=["widgets"])
    status, refreshed = refresh(browser_app, body["refresh_token"])
    assert status == 200 and refreshed["scope"] == "stream:widgets"


def test_user_allowed_scopes_is_the_union_of_approved_groups(member: User, streamers: Group) -> None:
    ops = Group.objects.create(name="ops")
    services.group_approve(group=ops, services=["load", "not-registered"])
    member.groups.add(ops)
    assert services.user_allowed_scopes(user=member) == {
        "stream:widgets",
        "stream:notifications",
        "publish:widgets",
        "stream:load",
    }
    member.groups.add(Group.objects.create(name="unapproved"))
    assert services.user_is_approved(user=member)


# --- client credentials ------------------------------------------------------------------------


def client_credentials(app: Application, secret: str, scope: str) -> tuple[int, dict[str, Any]]:
    return token_post(
        Client(), {"grant_type": "client_credentials", "scope": scope}, **basic_auth(app, secret)
    )


def test_client_credentials_for_an_approved_owner_are_narrowed(member: User) -> None:
    app, secret = confidential_app(member)
    status, body = client_credentials(app, secret, "stream:widgets stream:load publish:widgets")
    assert status == 200, body
    assert body["scope"] == "stream:widgets publish:widgets"
    assert "refresh_token" not in body
    token = AccessToken.objects.get(application=app)
    assert token.user is None and services.application_is_approved(application=token.application)


def test_client_credentials_for_an_unapproved_owner_are_refused(outsider: User) -> None:
    app, secret = confidential_app(outsider)
    status, body = client_credentials(app, secret, "stream:widgets")
    assert (status, body["error"]) == (400, "unauthorized_client")
    assert not AccessToken.objects.exists()


def test_client_credentials_for_nothing_allowed_is_invalid_scope(member: User) -> None:
    app, secret = confidential_app(member)
    assert client_credentials(app, secret, "stream:load")[1]["error"] == "invalid_scope"


def test_password_grant_is_disabled(member: User) -> None:
    app, secret = confidential_app(member, Application.GRANT_PASSWORD)
    data = {"grant_type": "password", "username": "member", "password": PASSWORD, "scope": "stream:widgets"}
    status, body = token_post(Client(), data, **basic_auth(app, secret))
    assert status in (400, 401) and "access_token" not in body


# --- approval changes are announced ------------------------------------------------------------


@pytest.fixture
def announcements() -> Iterator[list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []

    def record(sender: Any, **kwargs: Any) -> None:
        sent.append({"group": kwargs["group"].name, "user_ids": kwargs["user_ids"]})

    approval_changed.connect(record)
    yield sent
    approval_changed.disconnect(record)


def test_approval_changes_are_announced_after_commit(
    member: User,
    streamers: Group,
    announcements: list[dict[str, Any]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        services.group_approve(group=streamers, services=["widgets"])
        assert announcements == []
    with django_capture_on_commit_callbacks(execute=True):
        member.groups.remove(streamers)
    with django_capture_on_commit_callbacks(execute=True):
        services.group_revoke(group=streamers)
    assert announcements == [
        {"group": "streamers", "user_ids": frozenset({member.pk})},
        {"group": "streamers", "user_ids": frozenset({member.pk})},
        {"group": "streamers", "user_ids": frozenset()},
    ]


def test_admin_saves_approved_groups_through_the_service(
    admin_client: Client, announcements: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    group = Group.objects.create(name="viewers")
    data = {"group": group.pk, "services": ["widgets", "load"], "publish_services": ["widgets"]}
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/admin/accounts/approvedgroup/add/", data)
    assert response.status_code == 302, response.content
    approval = ApprovedGroup.objects.get(group=group)
    assert (approval.services, approval.publish_services) == (["load", "widgets"], ["widgets"])
    assert announcements == [{"group": "viewers", "user_ids": frozenset()}]


# --- commands --------------------------------------------------------------------------------


def run(*args: str) -> list[str]:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().splitlines()


def test_issue_token_prints_only_a_working_token_last(member: User, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    app, _ = confidential_app(member)
    lines = run(
        "issue_token",
        "member",
        "--scope",
        "stream:widgets publish:widgets",
        "--expires",
        "120",
        "--application",
        app.name,
    )
    token = lines[-1]
    stored = AccessToken.objects.get(token_checksum=hashlib.sha256(token.encode()).hexdigest())
    assert stored.user == member and stored.application == app
    assert stored.scope == "stream:widgets publish:widgets"
    assert 110 <= (stored.expires - timezone.now()).total_seconds() <= 120
    assert token not in caplog.text


def test_issue_token_default_lifetime_is_fifteen_minutes(member: User) -> None:
    token = run("issue_token", "member", "--scope", "stream:widgets")[-1]
    stored = AccessToken.objects.get(token_checksum=hashlib.sha256(token.encode()).hexdigest())
    assert 890 <= (stored.expires - timezone.now()).total_seconds() <= 900


@pytest.mark.parametrize(
    "args, message",
    [
        (["nobody", "--scope", "stream:widgets"], "Unknown user 'nobody'"),
        (["outsider", "--scope", "stream:widgets"], "not an active member of an approved group"),
        (["member", "--scope", "stream:nope"], "Unknown scope(s): stream:nope"),
        (["member", "--scope", "stream:widgets stream:load"], "allows: stream:load"),
        (["member", "--scope", " "], "Name at least one scope"),
        (["member", "--scope", "stream:widgets", "--expires", "0"], "positive number of seconds"),
        (["member", "--scope", "stream:widgets", "--application", "nope"], "No application is named 'nope'"),
    ],
)
def test_issue_token_errors(member: User, outsider: User, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run("issue_token", *args)
    assert not AccessToken.objects.exists()


def test_approve_group_creates_approves_and_revokes() -> None:
    assert run("approve_group", "ops", "--service", "widgets", "load", "--publish", "widgets") == [
        "Created and approved group 'ops': stream ['widgets', 'load'], publish ['widgets']."
    ]
    approval = ApprovedGroup.objects.get(group__name="ops")
    assert (approval.services, approval.publish_services) == (["load", "widgets"], ["widgets"])
    run("approve_group", "ops")
    assert ApprovedGroup.objects.get(group__name="ops").services == sorted(SERVICES)
    assert run("approve_group", "ops", "--revoke") == ["Revoked the approval of group 'ops'."]
    assert not ApprovedGroup.objects.exists() and Group.objects.filter(name="ops").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["ops", "--service", "nope"], "Unknown service(s): nope"),
        (["ops", "--publish", "nope"], "Unknown service(s): nope"),
        (["ops", "--revoke"], "Group 'ops' is not approved"),
    ],
)
def test_approve_group_errors(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run("approve_group", *args)
    assert not ApprovedGroup.objects.exists()


def test_seed_demo_is_idempotent(settings: Any) -> None:
    settings.DEBUG = True
    first = run("seed_demo")
    run("seed_demo")
    assert "widgetapp-demo" in first[-1] and "http://127.0.0.1:8000/" in first[0]
    demo, admin, outsider = (User.objects.get(username=name) for name in ("demo", "admin", "outsider"))
    assert demo.check_password("widgetapp-demo") and admin.is_superuser and admin.is_staff
    assert services.user_allowed_scopes(user=demo) == {
        "stream:widgets",
        "stream:notifications",
        "publish:widgets",
    }
    assert "stream:load" in services.user_allowed_scopes(user=admin)
    assert not services.user_is_approved(user=outsider)
    app = Application.objects.get(client_id="widgetapp-browser")
    assert app.client_type == Application.CLIENT_PUBLIC and not app.skip_authorization
    assert app.redirect_uris.split() == [REDIRECT_URI, "http://localhost:8000/app/callback"]
    assert Application.objects.count() == 1 and ApprovedGroup.objects.count() == 2


def test_server_metadata_advertises_only_what_is_accepted() -> None:
    response = Client().get("/o/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    metadata = response.json()
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert not {"password", "implicit"} & set(metadata["grant_types_supported"])
    assert metadata["token_endpoint"].endswith("/o/token/")
