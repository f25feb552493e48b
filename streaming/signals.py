"""Bridges from model changes to live connections on every worker (after commit)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_application_model

from accounts.signals import approval_changed, authorization_refused, is_token_rotation
from streaming.bus import control
from streaming.delivery.backend import get_backend
from streaming.models import AuditEntry, ServiceConfig
from streaming.sessions import tickets
from streaming.wire.protocol import CLOSE_UNAUTHENTICATED


@receiver(post_delete, sender=get_access_token_model(), dispatch_uid="streaming.token_revoked")
def token_revoked(sender: Any, instance: Any, **kwargs: Any) -> None:
    checksum = instance.token_checksum
    if is_token_rotation():
        # Replaced by a refresh: connections keep it until expiry or an in-band swap, but no new
        # connection may open with it.
        transaction.on_commit(lambda: control.broadcast("forget", checksum=checksum))
        return
    if instance.expires is not None and instance.expires <= timezone.now():
        return  # expired (e.g. cleartokens): its sockets were closed at expiry; no broadcast per row
    transaction.on_commit(lambda: _revoked(checksum))


def _revoked(checksum: str) -> None:
    """Tickets of the token are refused from now on (marked first), then its sockets close."""
    tickets.mark(get_backend(), tickets.marks_for(checksum=checksum))
    control.broadcast("close", checksum=checksum, code=CLOSE_UNAUTHENTICATED, reason="Token revoked.")


def recheck(**fields: list[int]) -> None:
    """Re-judge the matching connections, and the tickets they reconnect with, on every worker.

    The marks go to the backend first, so a worker starting meanwhile refuses stale tickets too;
    an application's tickets carry no user to mark, so its change marks every ticket issued before.
    """
    marks = tickets.marks_for(
        user_ids=fields.get("user_ids", ()), everyone=bool(fields.get("application_ids"))
    )
    tickets.mark(get_backend(), marks)
    control.broadcast("recheck", **fields)


def recheck_after_commit(**fields: list[int]) -> None:
    """`recheck` once the change is committed."""
    transaction.on_commit(lambda: recheck(**fields))


@receiver(post_save, sender=get_user_model(), dispatch_uid="streaming.user_saved")
def user_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    if not created:
        recheck_after_commit(user_ids=[instance.pk])


@receiver(post_delete, sender=get_user_model(), dispatch_uid="streaming.user_deleted")
def user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    recheck_after_commit(user_ids=[instance.pk])


@receiver(post_save, sender=get_application_model(), dispatch_uid="streaming.application_saved")
@receiver(post_delete, sender=get_application_model(), dispatch_uid="streaming.application_deleted")
def application_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    """An application's owner, type or existence decides what its client-credentials tokens may do."""
    recheck_after_commit(application_ids=[instance.pk])


@receiver(approval_changed, dispatch_uid="streaming.approval_changed")
def approval(sender: Any, user_ids: frozenset[int], **kwargs: Any) -> None:
    recheck(user_ids=sorted(user_ids))


@receiver(post_save, sender=ServiceConfig, dispatch_uid="streaming.service_switched")
def service_switched(sender: Any, instance: ServiceConfig, **kwargs: Any) -> None:
    name, enabled = instance.name, instance.enabled
    transaction.on_commit(lambda: control.broadcast("service", name=name, enabled=enabled))


@receiver(authorization_refused, dispatch_uid="streaming.authorization_refused")
def consent_refused(
    sender: Any, user: Any, client_id: str, remote_addr: str, error: str, description: str, **kwargs: Any
) -> None:
    """A refusal at the consent page belongs in the audit log with the socket-level denials."""
    AuditEntry.objects.create(
        kind=AuditEntry.Kind.DENIED,
        user=user if user.is_authenticated else None,
        application=get_application_model().objects.filter(client_id=client_id).first(),
        remote_addr=remote_addr[:64],
        detail=f"OAuth consent refused ({error}): {description}"[:300],
    )
