"""The desired state of an environment: one resolved node config per service.

Pure functions over the spec and the resolved image digests. A node's
identity is the digest (RFC 8785 canonical JSON, SHA-256) of its image
digest and its resolved configuration, so any change to either gives a new
identity and therefore a new node. Secret *values* are never part of the
configuration; only their names, sources and targets are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zerodrift._internal.canonical import canonical_digest
from zerodrift.errors import ConfigError, Location
from zerodrift.project import SPEC_FILE
from zerodrift.spec.models import Fleet, HealthCheck, Service
from zerodrift.spec.resolve import ResolvedService, resolve_services

__all__ = [
    "DesiredService",
    "desired_state",
    "flow_networks",
    "flow_rules",
    "network_name",
    "node_config",
    "node_identity",
]


@dataclass(frozen=True)
class DesiredService:
    """What one service should look like in an environment.

    Attributes:
        name: Service name.
        environment: Environment name.
        replicas: How many identical nodes should run.
        image: Image name in the spec.
        image_digest: The manifest digest every node must run.
        config: The resolved, secret-free node configuration.
        config_digest: Digest of ``config``.
        identity: Digest of the image digest and ``config``.
        max_age: Replace nodes older than this many seconds.
        max_surge: Extra nodes allowed during a rollout.
        max_unavailable: Nodes that may be missing during a rollout.
        health_timeout: Seconds a new node has to become healthy.
    """

    name: str
    environment: str
    replicas: int
    image: str
    image_digest: str
    config: Mapping[str, Any]
    config_digest: str
    identity: str
    max_age: int | None
    max_surge: int
    max_unavailable: int
    health_timeout: int


def network_name(fleet: str, environment: str, source: str, target: str) -> str:
    """The internal network carrying the data flow ``source`` -> ``target``."""
    return f"zd-{fleet}-{environment}-{source}-to-{target}"


def node_identity(image_digest: str, config: Mapping[str, Any]) -> str:
    """The identity of a node: digest of its image digest and configuration."""
    return canonical_digest({"image_digest": image_digest, "config": dict(config)})


def desired_state(
    fleet: Fleet, environment: str, digests: Mapping[str, str]
) -> list[DesiredService]:
    """Resolve every service of ``environment`` to its desired node config.

    Args:
        fleet: The validated spec.
        environment: Environment name.
        digests: Manifest digest per image name.

    Raises:
        ConfigError: The environment is unknown, an image has no digest, a
            node would run as root, or a service declares a port twice.
    """
    services = resolve_services(fleet, environment)
    networks = flow_networks(fleet, environment)
    rules = flow_rules(fleet, environment)
    desired = []
    for name, resolved in services.items():
        digest = digests.get(resolved.service.image)
        if digest is None:
            raise ConfigError(
                f"image {resolved.service.image!r} of service {name!r} has no "
                "digest in the store",
                hint=f"build it first (zerodrift build {resolved.service.image})",
                location=Location(SPEC_FILE, field=f"services.{name}.image"),
                reference="image-missing",
            )
        config = node_config(
            fleet.name, resolved, networks.get(name, {}), rules.get(name, {})
        )
        svc = resolved.service
        desired.append(
            DesiredService(
                name=name,
                environment=environment,
                replicas=svc.replicas,
                image=svc.image,
                image_digest=digest,
                config=config,
                config_digest=canonical_digest(config),
                identity=node_identity(digest, config),
                max_age=svc.max_age,
                max_surge=svc.rollout.max_surge,
                max_unavailable=svc.rollout.max_unavailable,
                health_timeout=svc.rollout.health_timeout,
            )
        )
    return desired


def node_config(
    fleet_name: str,
    resolved: ResolvedService,
    networks: Mapping[str, list[str]],
    flows: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The resolved, hardened configuration of one service's nodes.

    Args:
        fleet_name: The spec's fleet name.
        resolved: The service with its environment's overrides applied.
        networks: Flow network -> aliases the node has there.
        flows: Flow network -> what the node may do there (see
            :func:`flow_rules`); the runtime enforces it with firewall rules
            inside the node's network namespace.

    Raises:
        ConfigError: The image runs as root or a port is declared twice.
    """
    svc = resolved.service
    image = resolved.image
    _check_user(svc.image, image.user)
    _check_ports(resolved.name, svc)
    writable = sorted(set(svc.writable) | set(image.writable))
    return {
        "fleet": fleet_name,
        "service": resolved.name,
        "environment": resolved.environment,
        "user": image.user if ":" in image.user else f"{image.user}:{image.user}",
        "env": dict(sorted(svc.env.items())),
        "writable": writable,
        "volumes": [
            {
                "name": v.name,
                "volume": f"zd-{resolved.environment}-{resolved.name}-{v.name}",
                "path": v.path,
                "read_only": v.read_only,
            }
            for v in svc.volumes
        ],
        "capabilities": sorted(set(svc.capabilities)),
        "resources": {
            "memory": svc.resources.memory,
            "cpus": svc.resources.cpus,
            "pids": svc.resources.pids,
        },
        "networks": {net: sorted(aliases) for net, aliases in sorted(networks.items())},
        "flows": {
            net: {"direction": rule["direction"], "ports": sorted(rule["ports"])}
            for net, rule in sorted((flows or {}).items())
        },
        "ports": [
            {"name": p.name, "port": p.port, "protocol": p.protocol} for p in svc.ports
        ],
        # TODO: a rotated secret value keeps the node identity (a digest of the
        # value would be a guessable verifier), so apply does not roll it out
        # by itself: 'apply --replace SERVICE' does, until secret versions
        # are tracked in the state database.
        "secrets": [
            {
                "name": s.name,
                "source": s.source,
                "target": s.target or f"/run/secrets/{s.name}",
            }
            for s in svc.secrets
        ],
        "health": _health(svc, svc.health),
    }


def _check_user(image_name: str, user: str) -> None:
    uid = user.partition(":")[0]
    if int(uid) == 0:
        raise ConfigError(
            f"image {image_name!r} runs as root (user {user!r})",
            hint="nodes run as a non-root user; set images."
            f"{image_name}.user to an unprivileged uid:gid such as 65534:65534",
            location=Location(SPEC_FILE, field=f"images.{image_name}.user"),
            reference="root-user-refused",
        )


def _check_ports(service: str, svc: Service) -> None:
    seen: dict[tuple[int, str], str] = {}
    for port in svc.ports:
        key = (port.port, port.protocol)
        if key in seen:
            raise ConfigError(
                f"service {service!r} declares port {port.port}/{port.protocol} "
                f"twice ({seen[key]!r} and {port.name!r})",
                hint="each port number may be declared once per service",
                location=Location(SPEC_FILE, field=f"services.{service}.ports"),
                reference="port-conflict",
            )
        seen[key] = port.name


def _health(svc: Service, health: HealthCheck | None) -> dict[str, Any] | None:
    if health is None:
        return None
    probe: dict[str, Any] = {
        "interval": health.interval,
        "timeout": health.timeout,
        "retries": health.retries,
        "start_period": health.start_period,
    }
    if health.command is not None:
        return {**probe, "kind": "command", "command": list(health.command)}
    if health.http is not None:
        port_name, _, path = health.http.partition("/")
        return {
            **probe,
            "kind": "http",
            "port": _port(svc, port_name),
            "path": "/" + path,
        }
    return {**probe, "kind": "tcp", "port": _port(svc, str(health.tcp))}


def _port(svc: Service, name: str) -> int:
    for port in svc.ports:
        if port.name == name:
            return port.port
    # The reference checker reports unknown port names; this is a safe default.
    return int(name) if name.isdigit() else 0


def flow_networks(fleet: Fleet, environment: str) -> dict[str, dict[str, list[str]]]:
    """Per service: network -> aliases it has there, one network per flow edge."""
    result: dict[str, dict[str, list[str]]] = {}
    for source, svc in sorted(fleet.services.items()):
        for flow in svc.talks_to:
            net = network_name(fleet.name, environment, source, flow.service)
            result.setdefault(source, {}).setdefault(net, [])
            result.setdefault(flow.service, {})[net] = [flow.service]
    return result


def flow_rules(fleet: Fleet, environment: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Per service: network -> the direction and ports its nodes allow there.

    On the network of flow ``A -> B``, A's nodes have direction ``out``
    (they may open connections to the network's ports, nobody may open one
    to them) and B's nodes direction ``in`` (they accept connections on the
    ports and open none). ``ports`` are ``"<number>/<protocol>"`` strings of
    the target's declared ports that the flows name (see ADR 0026).
    """
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for source, svc in sorted(fleet.services.items()):
        for flow in svc.talks_to:
            net = network_name(fleet.name, environment, source, flow.service)
            port = _flow_port(fleet, source, flow.service, flow.port)
            for service, direction in ((source, "out"), (flow.service, "in")):
                rule = result.setdefault(service, {}).setdefault(
                    net, {"direction": direction, "ports": []}
                )
                if port not in rule["ports"]:
                    rule["ports"] = sorted([*rule["ports"], port])
    return result


def _flow_port(fleet: Fleet, source: str, target: str, port: str | int) -> str:
    """``"<number>/<protocol>"`` of the port a flow names on its target.

    Raises:
        ConfigError: The target does not declare that port (the spec's
            reference check reports this first when the spec is loaded).
    """
    declared = fleet.services[target].ports if target in fleet.services else []
    for candidate in declared:
        if port in (candidate.name, candidate.port):
            return f"{candidate.port}/{candidate.protocol}"
    raise ConfigError(
        f"flow from {source!r} to {target!r} names port {port!r}, which "
        f"{target!r} does not declare",
        hint=f"declare the port under services.{target}.ports",
        location=Location(SPEC_FILE, field=f"services.{source}.talks_to"),
        reference="flow-port-unknown",
    )
