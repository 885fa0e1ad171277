"""Identify: the asset inventory is recorded, recent and matches the spec."""

from __future__ import annotations

from typing import Any

from zerodrift.comply.evidence import Evidence, NodeRow, Snapshot, parse_time
from zerodrift.comply.registry import EvidenceRef, Verdict, control
from zerodrift.reconcile.desired import flow_networks, flow_rules

__all__ = [
    "data_flows_declared",
    "data_flows_enforced",
    "inventory_recorded",
    "no_unmanaged_nodes",
]


def _snapshot_ref(snapshot: Snapshot, note: str) -> EvidenceRef:
    return EvidenceRef("inventory-snapshot", str(snapshot.id), note, snapshot.taken_at)


@control(
    "inventory-recorded",
    title="An inventory snapshot is recent and matches the spec in force",
    csf=("ID.AM-01", "ID.AM-02"),
)
def inventory_recorded(evidence: Evidence) -> Verdict:
    """The asset inventory is recorded, recent and current.

    The newest inventory snapshot is younger than ``inventory_max_age``,
    lists images and services, and was taken from the newest spec revision.
    """
    # Unmanaged nodes are judged by no-unmanaged-nodes.
    newest = evidence.snapshot
    if newest is None:
        return Verdict.failed(
            "no inventory snapshot recorded; run 'zerodrift inventory'"
        )
    age = parse_time(evidence.as_of) - parse_time(newest.taken_at)
    limit = evidence.policy.inventory_max_age
    if age.total_seconds() > limit:
        return Verdict.failed(
            f"newest inventory snapshot is {_days(age.total_seconds())} old "
            f"(policy: {_days(limit)})",
            [_snapshot_ref(newest, "stale")],
        )
    content = newest.content
    if not content.get("services") or not content.get("images"):
        return Verdict.failed(
            "newest inventory snapshot lists no services or no images",
            [_snapshot_ref(newest, "empty")],
        )
    revisions = evidence.spec_revisions
    if revisions and revisions[-1].spec_digest != newest.spec_digest:
        latest = revisions[-1]
        return Verdict.failed(
            "the spec changed after the newest inventory snapshot",
            [
                _snapshot_ref(newest, f"taken from {newest.spec_digest[:19]}"),
                EvidenceRef(
                    "spec-revision", latest.spec_digest, "newer", latest.first_seen_at
                ),
            ],
        )
    return Verdict.passed(
        f"snapshot {newest.id}: {len(content['images'])} images, "
        f"{len(content['services'])} services, taken {newest.taken_at}",
        [_snapshot_ref(newest, "newest")],
    )


@control(
    "data-flows-declared",
    title="Data flows between services are declared and consistent",
    csf=("ID.AM-03",),
)
def data_flows_declared(evidence: Evidence) -> Verdict:
    """Communication between services is mapped.

    The newest inventory snapshot maps communication between services:
    some flow is declared when there are two or more services, and every
    flow joins two inventoried services.
    """
    # That deployed nodes are joined to exactly these flows' networks is
    # judged by data-flows-enforced.
    newest = evidence.snapshot
    if newest is None:
        return Verdict.not_applicable("no inventory snapshot recorded")
    services = {s["name"] for s in newest.content.get("services", [])}
    flows = newest.content.get("flows", [])
    if len(services) < 2:
        return Verdict.not_applicable("fewer than two services: no flows to map")
    ref = _snapshot_ref(newest, f"{len(flows)} flows")
    if not flows:
        return Verdict.failed(
            f"{len(services)} services but no data flow declared (talks_to)", [ref]
        )
    dangling = sorted(
        f"{f['source']}->{f['target']}"
        for f in flows
        if f["source"] not in services or f["target"] not in services
    )
    if dangling:
        return Verdict.failed(
            f"flows to or from services not in the inventory: {', '.join(dangling)}",
            [ref],
        )
    isolated = services - {f["source"] for f in flows} - {f["target"] for f in flows}
    note = f"; without flows: {', '.join(sorted(isolated))}" if isolated else ""
    return Verdict.passed(
        f"{len(flows)} flows between {len(services)} services declared{note}", [ref]
    )


@control(
    "data-flows-enforced",
    title="Deployed nodes are joined to exactly the networks of declared flows, "
    "one way and on the declared ports",
    csf=("ID.AM-03", "PR.IR-01"),
)
def data_flows_enforced(evidence: Evidence) -> Verdict:
    """Only declared communication is possible between deployed services.

    Each flow (``talks_to``) gets its own internal network joining the two
    services, and firewall rules in every node's network namespace let only
    the flow's source open connections, only to the flow's ports (ADR
    0026). Every node alive at ``as_of`` must have been created on exactly
    the networks, with the aliases and the flow rules (direction and
    ports), that the flows of the spec in force give its service: none
    missing (a declared flow that cannot work), none extra (communication
    nobody declared). A node with flows must also have a ``node.created``
    audit record listing the rules installed in its namespace.
    """
    spec = evidence.spec_in_force
    if spec is None:
        return Verdict.not_applicable("the spec in force at that time is not known")
    nodes = evidence.nodes
    if not nodes:
        return Verdict.not_applicable("no deployed node recorded")
    environments = {n.environment for n in nodes}
    expected = {env: flow_networks(spec.fleet, env) for env in environments}
    directions = {env: flow_rules(spec.fleet, env) for env in environments}
    installed = {
        r.subject
        for r in evidence.audit_of("node.created")
        if r.details.get("flow_rules")
    }
    bad = []
    for node in nodes:
        want = expected[node.environment].get(node.service, {})
        problems = [
            _network_problem(node, want),
            _rules_problem(node, directions[node.environment].get(node.service, {})),
        ]
        if want and node.name not in installed:
            problems.append("no record of the flow rules installed")
        problem = "; ".join(p for p in problems if p)
        if problem:
            bad.append(EvidenceRef("node", node.name, problem, node.created_at))
    if bad:
        return Verdict.failed(
            f"{len(bad)} of {len(nodes)} nodes are not on exactly their flows' "
            "networks with one-way rules",
            bad,
        )
    joined = sum(len(n.spec.get("config", {}).get("networks") or {}) for n in nodes)
    return Verdict.passed(
        f"{len(nodes)} nodes on exactly their flows' networks ({joined} joins), "
        "rules installed one way",
        [EvidenceRef("node", n.name, n.service, n.created_at) for n in nodes],
    )


def _network_problem(node: NodeRow, want: dict[str, list[str]]) -> str | None:
    have: dict[str, Any] = node.spec.get("config", {}).get("networks") or {}
    problems = []
    if extra := sorted(set(have) - set(want)):
        problems.append(f"undeclared {', '.join(extra)}")
    if missing := sorted(set(want) - set(have)):
        problems.append(f"missing {', '.join(missing)}")
    aliases = sorted(
        net
        for net in set(have) & set(want)
        if sorted(have[net] or []) != sorted(want[net])
    )
    if aliases:
        problems.append(f"other aliases on {', '.join(aliases)}")
    return "; ".join(problems) or None


def _rules_problem(node: NodeRow, want: dict[str, dict[str, Any]]) -> str | None:
    """How the node's recorded flow rules differ from the declared flows."""
    have: dict[str, Any] | None = node.spec.get("config", {}).get("flows")
    if have is None:
        return "direction not enforced (created without flow rules)" if want else None
    problems = []
    if unruled := sorted(set(want) - set(have)):
        problems.append(f"no flow rule on {', '.join(unruled)}")
    wrong = sorted(
        net
        for net in set(have) & set(want)
        if (have[net].get("direction"), sorted(have[net].get("ports") or []))
        != (want[net]["direction"], sorted(want[net]["ports"]))
    )
    if wrong:
        problems.append(f"other direction or ports on {', '.join(wrong)}")
    return "; ".join(problems) or None


@control(
    "no-unmanaged-nodes",
    title="The newest runtime inventory of each deployed environment found no "
    "unmanaged node",
    csf=("ID.AM-02",),
)
def no_unmanaged_nodes(evidence: Evidence) -> Verdict:
    """Everything running is in the asset register.

    For each deployed environment (a successful apply or recovery recorded),
    the newest ``zerodrift inventory --env E`` that asked the runtime is
    younger than ``inventory_max_age`` and found no node outside the spec.
    """
    deployed = {r.environment for r in evidence.deploy_runs if r.status == "succeeded"}
    if not deployed:
        return Verdict.not_applicable("no deployment recorded: no runtime to inventory")
    observed = {
        r.subject: r
        for r in evidence.audit_of("inventory.snapshot")
        if "unmanaged" in r.details
    }
    now = parse_time(evidence.as_of)
    limit = evidence.policy.inventory_max_age
    problems: list[str] = []
    refs: list[EvidenceRef] = []
    for env in sorted(deployed):
        record = observed.get(env)
        if record is None:
            problems.append(f"{env}: no inventory of the runtime recorded")
            continue
        unmanaged = record.details["unmanaged"]
        refs.append(
            EvidenceRef(
                "audit-record",
                str(record.seq),
                f"{env}: {len(unmanaged)} unmanaged",
                record.recorded_at,
            )
        )
        age = (now - parse_time(record.recorded_at)).total_seconds()
        if unmanaged:
            problems.append(f"{env}: unmanaged nodes {', '.join(unmanaged)}")
        elif age > limit:
            problems.append(
                f"{env}: newest runtime inventory is {_days(age)} old "
                f"(policy: {_days(limit)})"
            )
    if problems:
        return Verdict.failed("; ".join(problems), refs)
    return Verdict.passed(
        f"{len(deployed)} environments: no unmanaged node in the newest inventory",
        refs,
    )


def _days(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    return f"{seconds / 3600:.1f} h"
