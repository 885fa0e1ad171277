"""Planning: compare the desired state with what runs (pure, no IO).

A plan has three kinds of action and no other: ``create`` a node,
``replace`` a node (create its successor, then destroy it) and ``destroy`` a
node. There is no update: a node whose image, configuration or live state
differs from what it should be is replaced, with the reason recorded.

Nodes are matched by identity, never by name. Replicas of a service share
one identity, so a service is healthy when it has ``replicas`` good nodes of
the desired identity; good nodes beyond that are surplus and destroyed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from zerodrift.reconcile.desired import DesiredService
from zerodrift.runtime.backend import (
    LABEL_CONFIG,
    LABEL_ENVIRONMENT,
    LABEL_FLEET,
    LABEL_GENERATION,
    LABEL_IMAGE_DIGEST,
    ActualNode,
)

__all__ = [
    "REASONS",
    "Action",
    "ActionKind",
    "Plan",
    "UnmanagedNode",
    "plan_environment",
]

ActionKind = Literal["create", "replace", "destroy"]

REASONS = {
    "missing": "fewer nodes than replicas",
    "image changed": "the image digest differs from the spec's",
    "config changed": "the resolved configuration differs from the spec's",
    "drifted": "the live configuration or flow rules were changed in place",
    "unrecorded": "the state database has no record of creating this node",
    "not running": "the node stopped or never started",
    "older than max_age": "the node is older than the service's max_age",
    "replacement requested": "its service was named with --replace",
    "surplus": "more nodes than replicas",
    "superseded": "a node of the desired identity already replaced it",
    "service removed": "the service is no longer in the spec",
    "unmanaged": "not created by zerodrift for this spec (--prune)",
}


@dataclass(frozen=True)
class Action:
    """One step of a plan.

    Attributes:
        kind: ``create``, ``replace`` or ``destroy``.
        service: The service concerned (``None`` for unmanaged nodes).
        reason: Why (a key of :data:`REASONS`).
        node: The existing node replaced or destroyed.
        identity: The identity of the node to create.
        image_digest: The image the new node runs.
        previous_digest: The image the replaced node ran.
        generation: Generation label of the node to create.
    """

    kind: ActionKind
    service: str | None
    reason: str
    node: str | None = None
    identity: str | None = None
    image_digest: str | None = None
    previous_digest: str | None = None
    generation: int | None = None


@dataclass(frozen=True)
class UnmanagedNode:
    """A container zerodrift did not create for this environment's spec."""

    name: str
    node_id: str
    reason: str


@dataclass
class Plan:
    """What apply would do to bring an environment to its desired state."""

    environment: str
    actions: list[Action] = field(default_factory=list)
    unmanaged: list[UnmanagedNode] = field(default_factory=list)
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        """Whether apply would change nothing."""
        return not self.actions

    def counts(self) -> dict[str, int]:
        """Number of actions of each kind."""
        totals = {"create": 0, "replace": 0, "destroy": 0}
        for action in self.actions:
            totals[action.kind] += 1
        return totals

    def to_dict(self) -> dict[str, Any]:
        """Render as a JSON-ready dict."""
        return {
            "environment": self.environment,
            "summary": {**self.counts(), "unchanged": self.unchanged},
            "actions": [asdict(a) for a in self.actions],
            "unmanaged": [asdict(u) for u in self.unmanaged],
        }


def plan_environment(
    desired: Sequence[DesiredService],
    actual: Iterable[ActualNode],
    *,
    fleet: str,
    environment: str,
    now: float,
    recorded_facts: Mapping[str, str | None] | None = None,
    prune: bool = False,
    replace: Collection[str] = frozenset(),
) -> Plan:
    """Compute the actions that turn ``actual`` into ``desired``.

    Args:
        desired: The desired services of the environment.
        actual: Every observed container (managed or not).
        fleet: The spec's fleet name; managed nodes of other fleets or
            environments are ignored.
        environment: The environment planned.
        now: Current time (seconds since the epoch), for ``max_age``.
        recorded_facts: Live-facts digest recorded when each node was
            created, by node name; ``None`` skips drift checks.
        prune: Also destroy unmanaged nodes.
        replace: Services whose every node is replaced even when nothing
            else calls for it (after a secret's value was rotated, say).

    Returns:
        The plan; ``unmanaged`` lists nodes that are not part of the spec.
    """
    plan = Plan(environment)
    by_service: dict[str, list[ActualNode]] = defaultdict(list)
    wanted = {d.name: d for d in desired}
    for node in actual:
        if node.managed:
            if (
                node.labels.get(LABEL_FLEET) != fleet
                or node.labels.get(LABEL_ENVIRONMENT) != environment
            ):
                continue
            owner = node.service or ""
            if owner in wanted:
                by_service[owner].append(node)
                continue
            plan.unmanaged.append(
                UnmanagedNode(node.name, node.node_id, "service removed")
            )
        else:
            plan.unmanaged.append(UnmanagedNode(node.name, node.node_id, "unmanaged"))
    for want in desired:
        _plan_service(
            plan,
            want,
            by_service.get(want.name, []),
            now,
            recorded_facts,
            requested=want.name in replace,
        )
    if prune:
        plan.actions.extend(
            Action("destroy", None, u.reason, u.name) for u in plan.unmanaged
        )
    return plan


def _stale_reason(
    node: ActualNode,
    want: DesiredService,
    now: float,
    recorded_facts: Mapping[str, str | None] | None,
    *,
    requested: bool,
) -> str | None:
    labels = node.labels
    if labels.get(LABEL_IMAGE_DIGEST) != want.image_digest:
        return "image changed"
    if labels.get(LABEL_CONFIG) != want.config_digest or node.identity != want.identity:
        return "config changed"
    if node.state != "running":
        return "not running"
    if recorded_facts is not None:
        if node.name not in recorded_facts:
            return "unrecorded"
        recorded = recorded_facts[node.name]
        if node.facts_digest and recorded and node.facts_digest != recorded:
            return "drifted"
    if node.flows_enforced is False:
        return "drifted"
    if want.max_age is not None and now - node.created_at > want.max_age:
        return "older than max_age"
    return "replacement requested" if requested else None


def _plan_service(
    plan: Plan,
    want: DesiredService,
    nodes: list[ActualNode],
    now: float,
    recorded_facts: Mapping[str, str | None] | None,
    *,
    requested: bool,
) -> None:
    good: list[ActualNode] = []
    stale: list[tuple[ActualNode, str]] = []
    generation = 0
    current_generation: int | None = None
    for node in nodes:
        node_generation = _generation(node)
        generation = max(generation, node_generation)
        reason = _stale_reason(node, want, now, recorded_facts, requested=requested)
        if reason is None:
            good.append(node)
            current_generation = node_generation
        else:
            stale.append((node, reason))
    new_generation = current_generation if current_generation else generation + 1
    good.sort(key=lambda n: (-n.created_at, n.name))
    stale.sort(key=lambda item: (item[0].created_at, item[0].name))
    for node in good[want.replicas :]:
        plan.actions.append(Action("destroy", want.name, "surplus", node.name))
    kept = min(len(good), want.replicas)
    plan.unchanged += kept
    missing = want.replicas - kept
    for node, reason in stale:
        if missing > 0:
            plan.actions.append(
                Action(
                    "replace",
                    want.name,
                    reason,
                    node.name,
                    want.identity,
                    want.image_digest,
                    node.labels.get(LABEL_IMAGE_DIGEST),
                    new_generation,
                )
            )
            missing -= 1
        else:
            plan.actions.append(Action("destroy", want.name, "superseded", node.name))
    plan.actions.extend(
        Action(
            "create",
            want.name,
            "missing",
            None,
            want.identity,
            want.image_digest,
            None,
            new_generation,
        )
        for _ in range(missing)
    )


def _generation(node: ActualNode) -> int:
    value = node.labels.get(LABEL_GENERATION, "0")
    return int(value) if value.isdigit() else 0
