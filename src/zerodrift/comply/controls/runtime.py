"""Protect: deployed nodes run with least privilege and are replaced in time."""

from __future__ import annotations

from zerodrift.comply.evidence import Evidence, NodeRow, parse_time
from zerodrift.comply.registry import EvidenceRef, Verdict, control
from zerodrift.errors import ConfigError
from zerodrift.spec import LoadedSpec
from zerodrift.spec.resolve import resolve_services

__all__ = ["nodes_least_privilege", "nodes_within_max_age"]

# Capabilities that amount to (near) full control of the host or of other
# containers; a node that adds one back is not least-privilege.
DANGEROUS_CAPABILITIES = frozenset(
    {
        "ALL",
        "BPF",
        "DAC_READ_SEARCH",
        "NET_ADMIN",
        "PERFMON",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_MODULE",
        "SYS_PTRACE",
        "SYS_RAWIO",
        "SYS_TIME",
    }
)


def _node_ref(node: NodeRow, note: str) -> EvidenceRef:
    return EvidenceRef("node", node.name, note, node.created_at)


@control(
    "nodes-least-privilege",
    title="Deployed nodes run as non-root, with no dangerous capability, limited",
    csf=("PR.AA-05", "PR.PS-01"),
)
def nodes_least_privilege(evidence: Evidence) -> Verdict:
    """Every live node was created with least-privilege runtime settings.

    From the node specs recorded at creation: a non-root user, no dangerous
    capability added back (all others are dropped), memory and process
    limits, and a recorded live-facts digest. The runtime backend always
    applies a read-only root, no-new-privileges and never privileged; the
    facts digest (which covers those settings) lets drift detection prove
    they were not changed afterwards.
    """
    nodes = evidence.nodes
    if not nodes:
        return Verdict.not_applicable("no deployed node recorded")
    bad = [
        _node_ref(node, "; ".join(problems))
        for node in nodes
        if (problems := _privilege_problems(node))
    ]
    if bad:
        return Verdict.failed(
            f"{len(bad)} of {len(nodes)} nodes exceed least privilege", bad
        )
    return Verdict.passed(
        f"{len(nodes)} nodes: non-root, no dangerous capability, limited",
        [
            _node_ref(node, node.spec.get("config", {}).get("user", "?"))
            for node in nodes
        ],
    )


def _privilege_problems(node: NodeRow) -> list[str]:
    config = node.spec.get("config", {})
    problems = []
    user = str(config.get("user") or "")
    if not user or user.partition(":")[0] in ("0", "root"):
        problems.append(f"runs as root (user {user!r})")
    dangerous = sorted(set(config.get("capabilities", [])) & DANGEROUS_CAPABILITIES)
    if dangerous:
        problems.append(f"adds {', '.join(dangerous)}")
    resources = config.get("resources") or {}
    if not resources.get("memory") or not resources.get("pids"):
        problems.append("no memory or process limit")
    if node.facts_digest is None:
        problems.append("live settings not recorded")
    return problems


@control(
    "nodes-within-max-age",
    title="No deployed node is older than its service's max_age",
    csf=("PR.PS-02", "ID.AM-08"),
)
def nodes_within_max_age(evidence: Evidence) -> Verdict:
    """Nodes are replaced before they reach their service's ``max_age``.

    Node age is ``as_of`` minus the recorded creation time; the limit is the
    service's ``max_age`` in its environment (overrides applied). Services
    without ``max_age`` are not judged.
    """
    spec = evidence.spec_in_force
    if spec is None:
        return Verdict.not_applicable("the spec in force at that time is not known")
    now = parse_time(evidence.as_of)
    limits = _max_ages(spec, {n.environment for n in evidence.nodes})
    judged = [n for n in evidence.nodes if (n.environment, n.service) in limits]
    if not judged:
        return Verdict.not_applicable("no deployed node of a service with max_age")
    late = []
    for node in judged:
        age = (now - parse_time(node.created_at)).total_seconds()
        limit = limits[node.environment, node.service]
        if age > limit:
            late.append(_node_ref(node, f"{age / 3600:.1f} h old, max {limit} s"))
    if late:
        return Verdict.failed(
            f"{len(late)} of {len(judged)} nodes are older than their max_age", late
        )
    return Verdict.passed(
        f"{len(judged)} nodes within their max_age",
        [_node_ref(node, "within max_age") for node in judged],
    )


def _max_ages(spec: LoadedSpec, environments: set[str]) -> dict[tuple[str, str], int]:
    limits = {}
    for env in sorted(environments & set(spec.fleet.environments)):
        try:
            services = resolve_services(spec.fleet, env)
        except ConfigError:
            continue
        for name, resolved in services.items():
            if resolved.service.max_age is not None:
                limits[env, name] = int(resolved.service.max_age)
    return limits
