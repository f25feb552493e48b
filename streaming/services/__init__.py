"""Service registry: a service is a class registered by name; one file per service."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from streaming.wire.protocol import BAD_REQUEST, FORBIDDEN, ProtocolError


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is on a connection: the token's user (or client-credentials application) and scopes."""

    user_id: int | None
    username: str
    is_staff: bool
    application_id: int | None
    scopes: frozenset[str]

    @property
    def owner(self) -> tuple[int | None, int | None]:
        """Whose connections these are: the user, or the application when there is no user."""
        return (self.user_id, None if self.user_id is not None else self.application_id)

    def can_stream(self, service: str) -> bool:
        return f"stream:{service}" in self.scopes

    def can_publish(self, service: str) -> bool:
        return f"publish:{service}" in self.scopes


@dataclass(frozen=True, slots=True)
class Topic:
    """A topic as its family parsed it: `widget:42` is family "widget" with argument "42"."""

    family: str
    arg: str = ""

    @property
    def name(self) -> str:
        return f"{self.family}:{self.arg}" if self.arg else self.family


#: Whether a principal may follow a topic. Runs in a thread, so it may use the ORM and Django's
#: permissions (`user.has_perm(perm, obj)`, a queryset filter): the rules the views use.
Authorize = Callable[[Principal, Topic], bool]


@dataclass(frozen=True, slots=True)
class TopicFamily:
    """Topics of one kind: the fixed topic `name`, or `name:<arg>` when `arg` (a regex) is given."""

    name: str
    #: Regular expression the argument must match in full; None for a fixed topic.
    arg: str | None = None
    #: What the argument is, as documentation and error messages name it (`widget:<id>`).
    arg_name: str = "arg"
    #: Who may follow; None: whoever may use the service.
    authorize: Authorize | None = None

    @property
    def pattern(self) -> str:
        return self.name if self.arg is None else f"{self.name}:<{self.arg_name}>"

    def parse(self, topic: str) -> Topic | None:
        """The topic if it is of this family (a malformed argument is a bad request), else None."""
        if self.arg is None:
            return Topic(self.name) if topic == self.name else None
        family, colon, arg = topic.partition(":")
        if family != self.name or not colon:
            return None
        if re.fullmatch(self.arg, arg) is None:
            raise ProtocolError(BAD_REQUEST, f"Malformed topic {topic[:60]!r}: expected {self.pattern}.")
        return Topic(family, arg)


class Service:
    """Base class of a streamed service. Subclasses set `name` and override the hooks they need."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: Only staff users may subscribe (e.g. server load).
    staff_only: ClassVar[bool] = False
    #: Topic used when a client names none.
    default_topic: ClassVar[str] = "all"
    #: The service has only its default topic; naming another is a bad request.
    single_topic: ClassVar[bool] = False
    #: Whether the HTTP publish API may publish here. False: events come only from the service's
    #: own domain code (`publish()` in-process), whoever holds `publish:<name>`.
    http_publish: ClassVar[bool] = True
    #: Topic families the service accepts (e.g. `all` and `widget:<id>`), each with its own
    #: authorisation; empty: `topic_for` alone decides.
    topic_families: ClassVar[tuple[TopicFamily, ...]] = ()
    #: This service's defaults of the stream options (`streaming.delivery.options`), over STREAMING's.
    stream_defaults: ClassVar[Mapping[str, Any]] = {}

    def topic_for(self, principal: Principal, topic: str | None) -> str:
        """The topic a principal may follow for `topic`; raise ProtocolError otherwise."""
        if self.topic_families:
            return self._parse(topic or self.default_topic)[1].name
        if self.single_topic and topic not in (None, self.default_topic):
            raise ProtocolError(
                BAD_REQUEST, f"The {self.name} service has one topic, {self.default_topic!r}."
            )
        return topic or self.default_topic

    def _parse(self, topic: str) -> tuple[TopicFamily, Topic]:
        for family in self.topic_families:
            parsed = family.parse(topic)
            if parsed is not None:
                return family, parsed
        known = ", ".join(family.pattern for family in self.topic_families)
        raise ProtocolError(BAD_REQUEST, f"Unknown topic {topic[:60]!r}; {self.name} has {known}.")

    def topic_check(self, topic: str) -> Callable[[Principal], bool] | None:
        """The authorisation to run (in a thread) before following `topic`; None when there is none."""
        if not self.topic_families:
            return None
        family, parsed = self._parse(topic)
        authorize = family.authorize
        if authorize is None:
            return None
        return lambda principal: authorize(principal, parsed)

    def check_access(self, principal: Principal) -> None:
        if self.staff_only and not principal.is_staff:
            raise ProtocolError(FORBIDDEN, f"Service {self.name!r} is for staff only.")

    def publish_topic(self, principal: Principal, topic: str | None, data: Any) -> str:
        """The topic an HTTP publish goes to, after the policy's checks (who, topic, payload shape).

        Raise ProtocolError (FORBIDDEN or BAD_REQUEST) to refuse; domain code is not subject to it.
        """
        if not self.http_publish:
            raise ProtocolError(FORBIDDEN, f"The {self.name} service takes events only from its own code.")
        self.check_access(principal)
        if self.single_topic and topic not in (None, self.default_topic):
            raise ProtocolError(
                BAD_REQUEST, f"The {self.name} service has one topic, {self.default_topic!r}."
            )
        self.check_event(data)
        return topic or self.default_topic

    def check_event(self, data: Any) -> None:
        """Raise ProtocolError(BAD_REQUEST) when `data` is not an event this service's clients can apply."""

    async def request(self, principal: Principal, action: str, data: Any) -> Any:
        """Answer a `request` message; the default service has no actions."""
        raise ProtocolError(BAD_REQUEST, f"Service {self.name!r} has no action {action[:40]!r}.")


_registry: dict[str, Service] = {}


def register(cls: type[Service]) -> type[Service]:
    """Class decorator: make a service available under its `name`."""
    _registry[cls.name] = cls()
    return cls


def get(name: str) -> Service | None:
    return _registry.get(name)


def names() -> list[str]:
    return sorted(_registry)


def all_services() -> Iterator[Service]:
    return iter(_registry[n] for n in names())
