"""`approval_changed`: who may hold which scopes changed; the streaming engine re-checks sessions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models.signals import m2m_changed, pre_delete
from django.dispatch import Signal, receiver

from accounts.models import ApprovedGroup, User

#: True while a refresh grant replaces an access token: its deletion is a rotation, not a revocation.
_rotating: ContextVar[bool] = ContextVar("accounts_token_rotation", default=False)


@contextmanager
def token_rotation() -> Iterator[None]:
    marker = _rotating.set(True)
    try:
        yield
    finally:
        _rotating.reset(marker)


def is_token_rotation() -> bool:
    """Whether the access token being deleted right now is replaced by a refresh (not revoked)."""
    return _rotating.get()


#: Sent after commit with `group` (a Group) and `user_ids` (frozenset of the users whose access
#: may have changed) when a group is approved, revoked, its services change, or members join/leave.
approval_changed = Signal()


#: Sent with `user`, `client_id`, `remote_addr`, `error` and `description` when the consent page
#: refuses a signed-in user (not approved, or none of the scopes allowed), so it can be audited.
authorization_refused = Signal()


def approval_announce(*, group: Group, user_ids: frozenset[int] | None = None) -> None:
    """Send `approval_changed` once the current transaction commits (all members by default)."""
    if user_ids is None:
        user_ids = frozenset(group.user_set.values_list("pk", flat=True))
    transaction.on_commit(lambda: approval_changed.send(sender=ApprovedGroup, group=group, user_ids=user_ids))


@receiver(m2m_changed, sender=User.groups.through, dispatch_uid="accounts.membership_changed")
def membership_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any, **kwargs: Any
) -> None:
    if action not in {"post_add", "post_remove", "pre_clear"}:
        return
    if reverse:  # group.user_set.add(...): instance is the group, pk_set the users
        if ApprovedGroup.objects.filter(group=instance).exists():
            users = frozenset(pk_set) if pk_set else None
            approval_announce(group=instance, user_ids=users)
        return
    groups = Group.objects.filter(approval__isnull=False)
    groups = groups.filter(pk__in=pk_set) if pk_set else groups.filter(user=instance)
    for group in groups:
        approval_announce(group=group, user_ids=frozenset({instance.pk}))


@receiver(pre_delete, sender=ApprovedGroup, dispatch_uid="accounts.approval_deleted")
def approval_deleted(sender: Any, instance: ApprovedGroup, **kwargs: Any) -> None:
    """An approval goes (revoked, or its group deleted): members are counted before the rows go.

    Cascades fire no m2m_changed, so deleting an approved group is announced here.
    """
    approval_announce(group=instance.group)
