"""Cross-reference checks over a validated fleet spec (pure, no IO)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from zerodrift.spec.models import Fleet, Flow, HealthCheck

__all__ = ["UNISOLATING_CAPABILITIES", "Problem", "check_references"]

FieldPath = tuple[str | int, ...]

UNISOLATING_CAPABILITIES = frozenset({"ALL", "NET_ADMIN", "SYS_ADMIN"})
"""Capabilities a node may not add: with them it could undo the rules that
hold its data flows to the declared ones (ADR 0026)."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the spec, located by its key path."""

    path: FieldPath
    message: str
    hint: str | None = None


def check_references(fleet: Fleet) -> list[Problem]:
    """Return every dangling or inconsistent reference in ``fleet``.

    Checks that services name declared images, that flows name declared
    services and ports, that overrides and trust entries name declared
    services, environments and keys, that each health check has one probe
    that names a declared port, and that no service adds a capability that
    would let its nodes undo their flow rules.
    """
    problems: list[Problem] = []
    problems += _check_services(fleet)
    problems += _check_environments(fleet)
    problems += _check_trust(fleet)
    problems += _check_policy(fleet)
    return problems


def _known(names: Iterable[str]) -> str:
    listed = ", ".join(sorted(names)) or "none"
    return f"declared: {listed}"


def _check_services(fleet: Fleet) -> list[Problem]:
    problems: list[Problem] = []
    for name, svc in fleet.services.items():
        base: FieldPath = ("services", name)
        if svc.image not in fleet.images:
            problems.append(
                Problem(
                    (*base, "image"),
                    f"service {name!r} uses unknown image {svc.image!r}",
                    _known(fleet.images),
                )
            )
        problems += _check_unique(base, "ports", [p.name for p in svc.ports])
        problems += _check_unique(base, "secrets", [s.name for s in svc.secrets])
        problems += _check_unique(base, "volumes", [v.name for v in svc.volumes])
        for index, flow in enumerate(svc.talks_to):
            problems += _check_flow(fleet, (*base, "talks_to", index), name, flow)
        if svc.health is not None:
            problems += _check_health(base, svc.health, {p.name for p in svc.ports})
        problems += [
            Problem(
                (*base, "capabilities", index),
                f"service {name!r} asks for {cap}, with which a node could remove "
                "the flow rules installed in its own network namespace",
                "nodes may not add NET_ADMIN, SYS_ADMIN or ALL; declare the "
                "flows the service needs with talks_to",
            )
            for index, cap in enumerate(svc.capabilities)
            if cap in UNISOLATING_CAPABILITIES
        ]
    return problems


def _check_unique(base: FieldPath, key: str, names: list[str]) -> list[Problem]:
    seen: set[str] = set()
    problems = []
    for index, item in enumerate(names):
        if item in seen:
            problems.append(
                Problem(
                    (*base, key, index, "name"),
                    f"duplicate name {item!r} in {key}",
                    "names must be unique within a service",
                )
            )
        seen.add(item)
    return problems


def _check_flow(
    fleet: Fleet, path: FieldPath, source: str, flow: Flow
) -> list[Problem]:
    target = fleet.services.get(flow.service)
    if target is None:
        return [
            Problem(
                (*path, "service"),
                f"flow from {source!r} to unknown service {flow.service!r}",
                _known(fleet.services),
            )
        ]
    if flow.service == source:
        return [
            Problem(
                path,
                f"service {source!r} declares a flow to itself",
                "a node always reaches itself; remove this flow",
            )
        ]
    ports = {p.name: p.port for p in target.ports}
    if flow.port not in ports and flow.port not in ports.values():
        return [
            Problem(
                (*path, "port"),
                f"flow from {source!r} to {flow.service!r} names port "
                f"{flow.port!r}, which {flow.service!r} does not declare",
                f"ports of {flow.service!r}: "
                + (", ".join(f"{n} ({p})" for n, p in ports.items()) or "none"),
            )
        ]
    return []


def _check_health(
    base: FieldPath, health: HealthCheck, ports: set[str]
) -> list[Problem]:
    path = (*base, "health")
    kinds = health.probe_kinds()
    if len(kinds) != 1:
        return [
            Problem(
                path,
                "a health check needs exactly one of command, http, tcp",
                f"found: {', '.join(kinds) or 'none'}",
            )
        ]
    port = health.tcp or (health.http.split("/", 1)[0] if health.http else None)
    if port is not None and port not in ports:
        return [
            Problem(
                (*path, kinds[0]),
                f"health check names port {port!r}, which is not declared",
                _known(ports),
            )
        ]
    return []


def _check_environments(fleet: Fleet) -> list[Problem]:
    problems = []
    for env_name, env in fleet.environments.items():
        for svc_name in env.overrides:
            if svc_name not in fleet.services:
                problems.append(
                    Problem(
                        ("environments", env_name, "overrides", svc_name),
                        f"environment {env_name!r} overrides unknown service "
                        f"{svc_name!r}",
                        _known(fleet.services),
                    )
                )
    return problems


def _check_trust(fleet: Fleet) -> list[Problem]:
    problems = []
    for env_name, key_names in fleet.trust.environments.items():
        path: FieldPath = ("trust", "environments", env_name)
        if env_name not in fleet.environments:
            problems.append(
                Problem(
                    path,
                    f"trust names unknown environment {env_name!r}",
                    _known(fleet.environments),
                )
            )
        for index, key in enumerate(key_names):
            if key not in fleet.trust.keys:
                problems.append(
                    Problem(
                        (*path, index),
                        f"trust names unknown key {key!r}",
                        _known(fleet.trust.keys),
                    )
                )
    return problems


def _check_policy(fleet: Fleet) -> list[Problem]:
    policy = fleet.policy
    known = fleet.environments
    problems = [
        Problem(
            ("policy", "environments", env),
            f"unknown environment {env!r}",
            _known(known),
        )
        for env in policy.environments
        if env not in known
    ]
    for env, sources in policy.promotion.items():
        for index, source in enumerate([env, *sources]):
            if source not in known:
                path: FieldPath = (
                    ("policy", "promotion", env)
                    if index == 0
                    else ("policy", "promotion", env, index - 1)
                )
                problems.append(
                    Problem(path, f"unknown environment {source!r}", _known(known))
                )
    for index, waiver in enumerate(policy.waivers):
        for env in waiver.environments:
            if env not in known:
                problems.append(
                    Problem(
                        ("policy", "waivers", index, "environments"),
                        f"waiver names unknown environment {env!r}",
                        _known(known),
                    )
                )
    return problems
