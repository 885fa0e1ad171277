"""The asset inventory: what the spec declares, per environment (pure, no IO).

The inventory is the spec read as an asset register. Later stages join it
with what actually runs and what each image contains; the shape below leaves
room for that (``nodes`` per service, ``digest`` per image).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from zerodrift.spec.models import Fleet
from zerodrift.spec.resolve import resolve_services

__all__ = [
    "FlowEdge",
    "ImageAsset",
    "Inventory",
    "ServiceAsset",
    "build_inventory",
    "join_nodes",
]


@dataclass(frozen=True)
class ImageAsset:
    """An image the fleet builds; ``digest`` is its manifest in the store."""

    name: str
    base: str
    packages: list[str]
    user: str
    used_by: list[str]
    digest: str | None = None


@dataclass(frozen=True)
class ServiceAsset:
    """A service in one environment."""

    name: str
    environment: str
    image: str
    replicas: int
    ports: list[str]
    writable: list[str]
    volumes: list[str]
    secrets: list[str]
    max_age: int | None
    response: str
    nodes: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class FlowEdge:
    """A declared data flow between two services."""

    source: str
    target: str
    port: str
    number: int
    protocol: str


@dataclass(frozen=True)
class Inventory:
    """The assets of a fleet, in one or all environments."""

    fleet: str
    spec_digest: str
    environments: list[str]
    images: list[ImageAsset]
    services: list[ServiceAsset]
    flows: list[FlowEdge]

    def to_dict(self) -> dict[str, Any]:
        """Render as a JSON-ready dict."""
        return asdict(self)


def build_inventory(
    fleet: Fleet,
    spec_digest: str,
    environment: str | None = None,
    image_digests: Mapping[str, str] | None = None,
) -> Inventory:
    """List the images, services, environments and flows the spec declares.

    Args:
        fleet: The validated spec.
        spec_digest: Digest of the spec, recorded with the inventory.
        environment: Limit services to one environment (default: all).
        image_digests: Manifest digest of each built image, by name; images
            not in it (not built yet) have no digest.

    Raises:
        ConfigError: ``environment`` is not declared.
    """
    envs = [environment] if environment else sorted(fleet.environments)
    services = [
        _service_asset(resolved)
        for env in envs
        for resolved in resolve_services(fleet, env).values()
    ]
    users: dict[str, list[str]] = {}
    for name, svc in sorted(fleet.services.items()):
        users.setdefault(svc.image, []).append(name)
    built = image_digests or {}
    images = [
        ImageAsset(
            name,
            img.base,
            list(img.packages),
            img.user,
            users.get(name, []),
            built.get(name),
        )
        for name, img in sorted(fleet.images.items())
    ]
    return Inventory(fleet.name, spec_digest, envs, images, services, _flows(fleet))


def _service_asset(resolved: Any) -> ServiceAsset:
    svc = resolved.service
    return ServiceAsset(
        name=resolved.name,
        environment=resolved.environment,
        image=svc.image,
        replicas=svc.replicas,
        ports=[f"{p.name}:{p.port}/{p.protocol}" for p in svc.ports],
        writable=list(svc.writable),
        volumes=[f"{v.name}:{v.path}" for v in svc.volumes],
        secrets=[s.name for s in svc.secrets],
        max_age=svc.max_age,
        response=resolved.response,
    )


def _flows(fleet: Fleet) -> list[FlowEdge]:
    edges = []
    for source, svc in sorted(fleet.services.items()):
        for flow in svc.talks_to:
            target = fleet.services[flow.service]
            port = next(p for p in target.ports if flow.port in (p.name, p.port))
            edges.append(
                FlowEdge(source, flow.service, port.name, port.port, port.protocol)
            )
    return edges


def join_nodes(
    inventory: Inventory,
    nodes: list[dict[str, Any]],
    *,
    now: float,
) -> list[dict[str, Any]]:
    """Attach running nodes to the services they belong to (in place).

    Args:
        inventory: An inventory of one environment.
        nodes: Observed nodes as dicts with ``name``, ``service``,
            ``environment``, ``fleet``, ``image_digest``, ``created_at``,
            ``state`` and ``managed``.
        now: Current time, for ages.

    Returns:
        The nodes that belong to no service of the inventory (unmanaged).
    """
    services = {(s.environment, s.name): s for s in inventory.services}
    unmanaged = []
    for node in nodes:
        row = {
            "name": node["name"],
            "state": node["state"],
            "image_digest": node.get("image_digest"),
            "generation": node.get("generation"),
            "age_seconds": max(0, int(now - float(node["created_at"]))),
        }
        key = (str(node.get("environment")), str(node.get("service")))
        service = services.get(key)
        if node.get("managed") and node.get("fleet") == inventory.fleet and service:
            service.nodes.append(row)
        elif not node.get("managed") or node.get("fleet") == inventory.fleet:
            unmanaged.append(row)
    return unmanaged
