"""Refusals of the approval rules; each message is a sentence an operator can act on."""


class AccessRefused(Exception):
    """A token request the approval rules refuse."""


class NotApproved(AccessRefused):
    """The user is inactive or in no approved group."""


class UnknownScope(AccessRefused):
    """A scope or service the authorization server does not know."""


class ScopeNotAllowed(AccessRefused):
    """A known scope that none of the user's approved groups allows."""
