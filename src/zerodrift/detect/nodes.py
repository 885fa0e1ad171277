"""Drift of running nodes against their declared, signed state (pure, no IO).

The desired state of an environment (:mod:`zerodrift.reconcile.desired`) says
what every node must look like: its image digest and its resolved
configuration. This module compares that with what the runtime reports about
each node (its inspect document, its filesystem changes relative to the
image, and the files in its declared writable paths) and turns every
deviation into a :class:`~zerodrift.detect.findings.Finding`:

``config-drift``
    the live configuration differs from the declared one (image digest, env,
    mounts, capabilities, user, read-only root, networks, ports, limits, and
    the flow rules in the node's network namespace);
``file-changed``
    files changed in the node's writable layer outside its declared writable
    paths and volumes;
``executable-added``
    an executable or script appeared inside a declared writable path;
``foreign-process``
    a process that is not a descendant of the node's entrypoint (an exec
    session such as an interactive shell);
``unrecorded``
    a node that carries zerodrift's labels but that zerodrift never created;
``outdated``
    a node of an older identity (the spec or an image moved; ``apply`` has
    not rolled it out yet);
``not-running``, ``missing``, ``unmanaged``
    nodes stopped, absent, or not created by zerodrift.

A node created by ``apply`` matches its declaration by construction, so a
legitimate deploy never raises a finding here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from zerodrift.detect.findings import Finding, Severity
from zerodrift.errors import OperationalError
from zerodrift.reconcile.desired import DesiredService
from zerodrift.runtime import firewall
from zerodrift.runtime.backend import (
    LABEL_ENVIRONMENT,
    LABEL_FLEET,
    LABEL_IDENTITY,
    LABEL_MANAGED,
    LABEL_SERVICE,
    FileChange,
    ProcessInfo,
)

__all__ = [
    "CSF",
    "RUNTIME_PATHS",
    "ObservedNode",
    "WritableFile",
    "config_differences",
    "environment_drift",
    "file_drift",
    "flow_rule_differences",
    "foreign_processes",
    "node_drift",
    "writable_roots",
]

SOURCE = "node"

CSF: dict[str, tuple[str, ...]] = {
    "config-drift": ("DE.CM-09", "PR.PS-01"),
    "file-changed": ("DE.CM-09", "DE.AE-02", "PR.DS-01"),
    "executable-added": ("DE.CM-09", "DE.AE-02", "PR.PS-05"),
    "foreign-process": ("DE.CM-09", "DE.AE-02", "PR.PS-05"),
    "unrecorded": ("DE.CM-09", "DE.AE-02", "PR.PS-05"),
    "outdated": ("PR.PS-01", "PR.PS-02"),
    "not-running": ("DE.CM-09", "PR.IR-03"),
    "missing": ("DE.CM-09", "PR.IR-03"),
    "unmanaged": ("DE.CM-09", "ID.AM-02", "PR.PS-05"),
}
"""CSF 2.0 subcategories each kind of node finding supports."""

RUNTIME_PATHS = frozenset(
    {
        "/etc/passwd",
        "/etc/group",
        "/etc/hosts",
        "/etc/hostname",
        "/etc/resolv.conf",
        "/run/.containerenv",
    }
)
"""Files podman itself writes into a node's layer.

User entries for a node user the image does not list, and mount points it
creates when the image lacks them.

TODO: these are trusted by path; compare their content with a baseline taken
when the node is created once apply records one.
"""

_RUNTIME_ENV = frozenset({"PATH", "TERM", "HOME", "HOSTNAME", "container"})
"""Environment variables the runtime or the image sets, not the spec."""

_MAX_LISTED = 50
"""Paths listed in one finding's evidence; the count is always complete."""

_CRITICAL_FIELDS = frozenset(
    {
        "image_digest",
        "privileged",
        "read_only",
        "capabilities",
        "user",
        "mounts",
        "flow_rules",
    }
)


@dataclass(frozen=True)
class WritableFile:
    """A regular file found in a node's declared writable path.

    Attributes:
        path: Absolute path inside the node.
        mode: Permission bits (``st_mode & 0o7777``).
        size: Size in bytes.
        head: The file's first bytes (at least four), for script and binary
            signatures.
    """

    path: str
    mode: int
    size: int
    head: bytes = b""

    @property
    def executable(self) -> bool:
        """Whether the file can run: an execute bit, ``#!`` or an ELF header."""
        return bool(self.mode & 0o111) or self.head.startswith((b"#!", b"\x7fELF"))


@dataclass(frozen=True)
class ObservedNode:
    """What the runtime reports about one container.

    Attributes:
        name: Container name.
        labels: Its labels.
        state: Coarse state (``running``, ``paused``...).
        inspect: The runtime's inspect document.
        changes: Paths that differ from the image (writable layer).
        writable_files: Files in declared writable paths; ``None`` when they
            could not be listed (the node is not running).
        processes: Its processes; ``None`` when not listed.
        facts_digest: Digest of the live facts now.
        flow_rules: The flow rules table live in the node's network
            namespace as ``nft`` lists it; ``None`` when absent or not read.
        flow_rules_read: Whether ``flow_rules`` was read (a running node
            with data flows).
    """

    name: str
    labels: Mapping[str, str]
    state: str
    inspect: Mapping[str, Any] = field(default_factory=dict)
    changes: Sequence[FileChange] = ()
    writable_files: Sequence[WritableFile] | None = None
    processes: Sequence[ProcessInfo] | None = None
    facts_digest: str | None = None
    flow_rules: str | None = None
    flow_rules_read: bool = False

    @property
    def managed(self) -> bool:
        """Whether the node carries zerodrift's managed label."""
        return self.labels.get(LABEL_MANAGED) == "true"


def environment_drift(
    desired: Sequence[DesiredService],
    nodes: Iterable[ObservedNode],
    *,
    fleet: str,
    environment: str,
    now: str,
    recorded: Mapping[str, str | None] | None = None,
    skip: Iterable[str] = (),
) -> list[Finding]:
    """Every finding about one environment's nodes.

    Args:
        desired: The environment's desired services.
        nodes: Every container the runtime reports (managed or not).
        fleet: The spec's fleet name; managed nodes of other fleets and
            environments are left alone.
        environment: The environment checked.
        now: Database-format time stamped on the findings.
        recorded: Live-facts digest zerodrift recorded when it created each
            node, by name; ``None`` skips the record checks.
        skip: Node names not to report (quarantined for an open incident).

    Returns:
        The findings, ordered by node and kind.
    """
    found: list[Finding] = []
    skipped = set(skip)
    wanted = {d.name: d for d in desired}
    current: dict[str, int] = dict.fromkeys(wanted, 0)
    for node in sorted(nodes, key=lambda n: n.name):
        if node.name in skipped:
            continue
        if not node.managed:
            found.append(_unmanaged(node, environment, now))
            continue
        if (
            node.labels.get(LABEL_FLEET) != fleet
            or node.labels.get(LABEL_ENVIRONMENT) != environment
        ):
            continue
        want = wanted.get(node.labels.get(LABEL_SERVICE, ""))
        if want is None:
            found.append(_unmanaged(node, environment, now, "service removed"))
            continue
        node_found = node_drift(want, node, now=now, recorded=recorded)
        counts = (
            node.state == "running"
            and node.labels.get(LABEL_IDENTITY) == want.identity
            and not any(f.kind == "unrecorded" for f in node_found)
        )
        current[want.name] += counts
        found.extend(node_found)
    for want in desired:
        if current[want.name] < want.replicas:
            found.append(
                _finding(
                    "missing",
                    Severity.MEDIUM,
                    f"service:{want.name}",
                    f"service {want.name} runs {current[want.name]} of "
                    f"{want.replicas} current node(s)",
                    now=now,
                    environment=environment,
                    details={
                        "service": want.name,
                        "replicas": want.replicas,
                        "running": current[want.name],
                        "identity": want.identity,
                    },
                )
            )
    return found


def node_drift(
    want: DesiredService,
    node: ObservedNode,
    *,
    now: str,
    recorded: Mapping[str, str | None] | None = None,
) -> list[Finding]:
    """The findings about one managed node of service ``want``.

    Args:
        want: The node's desired service.
        node: The node as observed.
        now: Database-format time stamped on the findings.
        recorded: Live-facts digests recorded at creation, by node name.
    """
    env = want.environment
    found: list[Finding] = []
    if recorded is not None and node.name not in recorded:
        found.append(
            _finding(
                "unrecorded",
                Severity.HIGH,
                node.name,
                f"node {node.name} carries zerodrift's labels but zerodrift "
                "never created it",
                now=now,
                environment=env,
                details={"service": want.name, "labels": dict(node.labels)},
            )
        )
    if node.labels.get(LABEL_IDENTITY) != want.identity:
        found.append(
            _finding(
                "outdated",
                Severity.LOW,
                node.name,
                f"node {node.name} runs an older identity of {want.name}; "
                "apply rolls it out",
                now=now,
                environment=env,
                details={
                    "service": want.name,
                    "expected_identity": want.identity,
                    "actual_identity": node.labels.get(LABEL_IDENTITY),
                },
            )
        )
        return found
    if node.state != "running":
        found.append(
            _finding(
                "not-running",
                Severity.MEDIUM,
                node.name,
                f"node {node.name} is {node.state}",
                now=now,
                environment=env,
                details={"service": want.name, "state": node.state},
            )
        )
    differences = config_differences(want, node.inspect)
    if node.flow_rules_read:
        differences += flow_rule_differences(want, node.inspect, node.flow_rules)
    before = (recorded or {}).get(node.name)
    if not differences and before and node.facts_digest and before != node.facts_digest:
        differences.append(
            {
                "field": "live_facts",
                "expected": before,
                "actual": node.facts_digest,
            }
        )
    if differences:
        fields = sorted({d["field"] for d in differences})
        severity = (
            Severity.CRITICAL if set(fields) & _CRITICAL_FIELDS else Severity.HIGH
        )
        found.append(
            _finding(
                "config-drift",
                severity,
                node.name,
                f"node {node.name} differs from its declaration in "
                + ", ".join(fields),
                now=now,
                environment=env,
                details={"service": want.name, "differences": differences},
            )
        )
    found.extend(file_drift(want, node, now=now))
    foreign = foreign_processes(node.processes or ())
    if foreign:
        found.append(
            _finding(
                "foreign-process",
                Severity.CRITICAL,
                node.name,
                f"{len(foreign)} process(es) in node {node.name} do not descend "
                f"from its entrypoint (first: {foreign[0].command})",
                now=now,
                environment=env,
                details={
                    "service": want.name,
                    "processes": [
                        {
                            "pid": p.pid,
                            "ppid": p.ppid,
                            "user": p.user,
                            "command": p.command,
                        }
                        for p in foreign[:_MAX_LISTED]
                    ],
                },
            )
        )
    return found


def foreign_processes(processes: Iterable[ProcessInfo]) -> list[ProcessInfo]:
    """Processes that are not PID 1 nor one of its descendants.

    Inside a node's PID namespace every process the entrypoint starts
    descends from PID 1; a process entered from outside (``podman exec``)
    has parent 0.
    """
    table = {p.pid: p for p in processes}
    foreign = []
    for process in sorted(table.values(), key=lambda p: p.pid):
        seen: set[int] = set()
        current: ProcessInfo | None = process
        while current is not None and current.pid != 1 and current.pid not in seen:
            seen.add(current.pid)
            current = table.get(current.ppid)
        if current is None or current.pid != 1:
            foreign.append(process)
    return foreign


def config_differences(
    want: DesiredService, inspect: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Compare a node's inspect document with its desired configuration.

    Returns:
        One ``{"field", "expected", "actual"}`` dict per differing setting.
    """
    expected = _expected(want)
    actual = _actual(inspect, want)
    return [
        {"field": key, "expected": expected[key], "actual": actual.get(key)}
        for key in expected
        if expected[key] != actual.get(key)
    ]


def flow_rule_differences(
    want: DesiredService, inspect: Mapping[str, Any], live: str | None
) -> list[dict[str, Any]]:
    """Compare a node's live flow rules with those its flows declare.

    The expected table is rendered for the subnets the node is attached to
    now; a node detached from a flow network is reported by the
    ``networks`` field instead.

    Args:
        want: The node's desired service (its ``flows``).
        inspect: The node's inspect document (its networks' subnets).
        live: The table as ``nft`` lists it, ``None`` when absent.

    Returns:
        One ``flow_rules`` difference listing the missing and extra rule
        lines, or nothing.
    """
    try:
        expected = firewall.ruleset(
            want.config.get("flows") or {}, firewall.network_addresses(inspect)
        )
    except OperationalError:
        return []
    missing, extra = firewall.differences(expected, live)
    if not missing and not extra:
        return []
    return [
        {
            "field": "flow_rules",
            "expected": missing,
            "actual": extra if live is not None else "no flow rules table",
        }
    ]


def file_drift(want: DesiredService, node: ObservedNode, *, now: str) -> list[Finding]:
    """Findings about a node's files.

    Changes of the writable layer outside the declared writable paths, and
    executables or scripts inside them.
    """
    allowed = _writable_roots(want.config)
    found: list[Finding] = []
    outside = _significant(
        [c for c in node.changes if not _under(c.path, allowed)],
        RUNTIME_PATHS | _mount_points(node.inspect),
    )
    if outside:
        found.append(
            _finding(
                "file-changed",
                Severity.HIGH,
                node.name,
                f"{len(outside)} file(s) of node {node.name} changed outside its "
                f"writable paths (first: {outside[0].path})",
                now=now,
                environment=want.environment,
                details={
                    "service": want.name,
                    "count": len(outside),
                    "changes": [
                        {"path": c.path, "kind": c.kind} for c in outside[:_MAX_LISTED]
                    ],
                },
            )
        )
    programs = sorted(
        (f for f in node.writable_files or () if f.executable), key=lambda f: f.path
    )
    if programs:
        found.append(
            _finding(
                "executable-added",
                Severity.CRITICAL,
                node.name,
                f"{len(programs)} executable(s) or script(s) appeared in writable "
                f"paths of node {node.name} (first: {programs[0].path})",
                now=now,
                environment=want.environment,
                details={
                    "service": want.name,
                    "count": len(programs),
                    "files": [
                        {"path": f.path, "mode": f"{f.mode:04o}", "size": f.size}
                        for f in programs[:_MAX_LISTED]
                    ],
                },
            )
        )
    return found


def writable_roots(config: Mapping[str, Any]) -> list[str]:
    """The declared writable paths of a node (tmpfs paths and rw volumes)."""
    return sorted(_writable_roots(config))


def _writable_roots(config: Mapping[str, Any]) -> set[str]:
    roots = set(config.get("writable") or [])
    roots |= {v["path"] for v in config.get("volumes") or [] if not v["read_only"]}
    return roots


def _under(path: str, roots: Iterable[str]) -> bool:
    pure = PurePosixPath(path)
    return any(
        pure == PurePosixPath(r) or PurePosixPath(r) in pure.parents for r in roots
    )


def _mount_points(inspect: Mapping[str, Any]) -> frozenset[str]:
    """Where the runtime mounts something (it creates missing mount points)."""
    host = inspect.get("HostConfig") or {}
    points = {str(m.get("Destination")) for m in inspect.get("Mounts") or []}
    points |= set(host.get("Tmpfs") or {})
    return frozenset(points)


def _significant(
    changes: Sequence[FileChange], ignored: frozenset[str]
) -> list[FileChange]:
    """Drop ignored paths and folders listed because something below changed.

    What changed below a folder is judged on its own.
    """
    paths = {c.path for c in changes} | set(ignored)
    kept = []
    for change in sorted(changes, key=lambda c: c.path):
        if change.path in ignored:
            continue
        ancestor = change.kind != "deleted" and any(
            p != change.path and p.startswith(change.path.rstrip("/") + "/")
            for p in paths
        )
        if not ancestor:
            kept.append(change)
    return kept


def _capability(name: str) -> str:
    upper = name.upper()
    return upper if upper.startswith("CAP_") else f"CAP_{upper}"


def _expected(want: DesiredService) -> dict[str, Any]:
    config = want.config
    resources = config.get("resources") or {}
    cpus = resources.get("cpus")
    return {
        "image_digest": want.image_digest,
        "user": config["user"],
        "env": dict(config.get("env") or {}),
        "read_only": True,
        "privileged": False,
        "no_new_privileges": True,
        "capabilities": sorted(_capability(c) for c in config.get("capabilities", [])),
        "volumes": sorted(
            f"{v['volume']}:{v['path']}:{'ro' if v['read_only'] else 'rw'}"
            for v in config.get("volumes") or []
        ),
        "mounts": [],
        "writable": sorted(config.get("writable") or []),
        "memory": int(resources["memory"]) if resources.get("memory") else None,
        "cpu_quota": int(float(cpus) * 100_000) if cpus else None,
        "pids": int(resources["pids"]) if resources.get("pids") else None,
        "networks": sorted(config.get("networks") or {}),
        "published_ports": [],
    }


def _actual(inspect: Mapping[str, Any], want: DesiredService) -> dict[str, Any]:
    host = inspect.get("HostConfig") or {}
    config = inspect.get("Config") or {}
    labels = config.get("Labels") or {}
    secret_env = set(filter(None, labels.get("io.zerodrift.secret-env", "").split(",")))
    env = {}
    for entry in config.get("Env") or []:
        key, _, value = entry.partition("=")
        if key not in _RUNTIME_ENV and key not in secret_env:
            env[key] = value
    mounts = inspect.get("Mounts") or []
    resources = want.config.get("resources") or {}
    caps = set(host.get("CapAdd") or []) | set(inspect.get("EffectiveCaps") or [])
    secret_folders = {
        str(PurePosixPath(s["target"]).parent)
        for s in want.config.get("secrets") or []
        if s["target"].startswith("/")
    } - set(want.config.get("writable") or [])
    return {
        "image_digest": inspect.get("ImageDigest"),
        "user": config.get("User"),
        "env": env,
        "read_only": bool(host.get("ReadonlyRootfs")),
        "privileged": bool(host.get("Privileged")),
        "no_new_privileges": "no-new-privileges" in (host.get("SecurityOpt") or []),
        "capabilities": sorted(_capability(c) for c in caps),
        "volumes": sorted(
            f"{m.get('Name')}:{m.get('Destination')}:{'rw' if m.get('RW') else 'ro'}"
            for m in mounts
            if m.get("Type") == "volume"
        ),
        "mounts": sorted(
            f"{m.get('Type')}:{m.get('Source')}:{m.get('Destination')}"
            for m in mounts
            if m.get("Type") != "volume"
        ),
        "writable": sorted(set(host.get("Tmpfs") or {}) - secret_folders),
        "memory": (host.get("Memory") or None) if resources.get("memory") else None,
        "cpu_quota": (host.get("CpuQuota") or None) if resources.get("cpus") else None,
        "pids": (host.get("PidsLimit") or None) if resources.get("pids") else None,
        "networks": sorted((inspect.get("NetworkSettings") or {}).get("Networks") or {})
        if host.get("NetworkMode") != "none"
        else [],
        "published_ports": sorted(
            port
            for port, binding in (host.get("PortBindings") or {}).items()
            if binding
        ),
    }


def _unmanaged(
    node: ObservedNode, environment: str, now: str, reason: str = "unmanaged"
) -> Finding:
    image = (node.inspect.get("Config") or {}).get("Image") or node.inspect.get(
        "ImageName"
    )
    return _finding(
        "unmanaged",
        Severity.HIGH,
        node.name,
        f"container {node.name} was not created by zerodrift for this spec ({reason})",
        now=now,
        environment=environment,
        details={"reason": reason, "state": node.state, "image": image},
    )


def _finding(
    kind: str,
    severity: Severity,
    subject: str,
    summary: str,
    *,
    now: str,
    environment: str,
    details: dict[str, Any],
) -> Finding:
    return Finding(
        source=SOURCE,
        kind=kind,
        severity=severity,
        subject=subject,
        summary=summary,
        found_at=now,
        details=details,
        csf=CSF[kind],
        environment=environment,
    )
