"""OAuth scopes backend: `stream:<service>` and `publish:<service>` for every registered service."""

from __future__ import annotations

from typing import Any

from oauth2_provider.scopes import BaseScopes

from streaming import services


def service_scopes() -> dict[str, str]:
    scopes: dict[str, str] = {}
    for service in services.all_services():
        scopes[f"stream:{service.name}"] = f"Follow {service.name} live"
        scopes[f"publish:{service.name}"] = f"Publish {service.name} events"
    return scopes


class ServiceScopes(BaseScopes):
    def get_all_scopes(self) -> dict[str, str]:
        return service_scopes()

    def get_available_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        return list(service_scopes())

    def get_default_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        return [name for name in service_scopes() if name.startswith("stream:")]
