"""Resolve a service's settings for one environment (pure, no IO)."""

from __future__ import annotations

from dataclasses import dataclass

from zerodrift.errors import ConfigError
from zerodrift.spec.models import Fleet, Image, ResponseMode, Service

__all__ = ["ResolvedService", "resolve_services"]


@dataclass(frozen=True)
class ResolvedService:
    """A service with its environment's overrides applied."""

    name: str
    environment: str
    service: Service
    image: Image
    response: ResponseMode


def resolve_services(fleet: Fleet, environment: str) -> dict[str, ResolvedService]:
    """Apply ``environment``'s overrides to every service of ``fleet``.

    Raises:
        ConfigError: ``environment`` is not declared in the spec.
    """
    env = fleet.environments.get(environment)
    if env is None:
        raise ConfigError(
            f"unknown environment {environment!r}",
            hint="declared: " + (", ".join(sorted(fleet.environments)) or "none"),
            reference="unknown-environment",
        )
    resolved = {}
    for name, service in sorted(fleet.services.items()):
        override = env.overrides.get(name)
        if override is not None:
            changes = {
                key: getattr(override, key)
                for key in override.model_fields_set - {"env", "response"}
            }
            if override.env:
                changes["env"] = {**service.env, **override.env}
            effective = service.model_copy(update=changes)
        else:
            effective = service
        response = (override and override.response) or service.response or env.response
        resolved[name] = ResolvedService(
            name, environment, effective, fleet.images[service.image], response
        )
    return resolved
