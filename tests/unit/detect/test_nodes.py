"""Drift of nodes against their declaration: each kind of deviation, table-driven."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from zerodrift.detect.findings import Severity
from zerodrift.detect.nodes import (
    ObservedNode,
    WritableFile,
    config_differences,
    environment_drift,
)
from zerodrift.reconcile.desired import DesiredService
from zerodrift.runtime.backend import FileChange, ProcessInfo

NOW = "2026-12-03T18:00:00.000000Z"
DIGEST = "sha256:" + "a" * 64
IDENTITY = "sha256:" + "1" * 64
CONFIG: dict[str, Any] = {
    "fleet": "shop",
    "service": "db",
    "environment": "dev",
    "user": "65534:65534",
    "env": {"DB_MODE": "strict"},
    "writable": ["/tmp"],
    "volumes": [
        {
            "name": "data",
            "volume": "zd-dev-db-data",
            "path": "/var/lib/db",
            "read_only": False,
        }
    ],
    "capabilities": ["NET_BIND_SERVICE"],
    "resources": {"memory": 134217728, "cpus": 0.5, "pids": 256},
    "networks": {"zd-shop-dev-api-to-db": ["db"]},
    "ports": [{"name": "sql", "port": 5432, "protocol": "tcp"}],
    "secrets": [
        {"name": "pw", "source": "env:PW", "target": "/run/secrets/pw"},
        {"name": "tok", "source": "env:TOK", "target": "TOKEN"},
    ],
    "health": None,
}
WANT = DesiredService(
    name="db",
    environment="dev",
    replicas=1,
    image="db",
    image_digest=DIGEST,
    config=CONFIG,
    config_digest="sha256:" + "2" * 64,
    identity=IDENTITY,
    max_age=None,
    max_surge=1,
    max_unavailable=0,
    health_timeout=30,
)
LABELS = {
    "io.zerodrift.managed": "true",
    "io.zerodrift.fleet": "shop",
    "io.zerodrift.environment": "dev",
    "io.zerodrift.service": "db",
    "io.zerodrift.identity": IDENTITY,
    "io.zerodrift.secret-env": "TOKEN",
}
# The shape podman 4 reports for a node apply created from CONFIG.
INSPECT: dict[str, Any] = {
    "ImageDigest": DIGEST,
    "Config": {
        "User": "65534:65534",
        "Env": [
            "PATH=/usr/bin:/bin",
            "TERM=xterm",
            "container=podman",
            "DB_MODE=strict",
            "HOSTNAME=db",
            "TOKEN=<secret>",
        ],
        "Labels": LABELS,
    },
    "HostConfig": {
        "ReadonlyRootfs": True,
        "Privileged": False,
        "SecurityOpt": ["no-new-privileges"],
        "CapAdd": ["CAP_NET_BIND_SERVICE"],
        "CapDrop": ["CAP_CHOWN", "CAP_KILL"],
        "Memory": 134217728,
        "CpuQuota": 50000,
        "PidsLimit": 256,
        "NetworkMode": "bridge",
        "PortBindings": {},
        "Tmpfs": {"/tmp": "rw,nosuid", "/run/secrets": "rw,noexec"},
    },
    "Mounts": [
        {
            "Type": "volume",
            "Name": "zd-dev-db-data",
            "Destination": "/var/lib/db",
            "RW": True,
        }
    ],
    "NetworkSettings": {"Networks": {"zd-shop-dev-api-to-db": {}}},
    "EffectiveCaps": None,
}
ENTRYPOINT = [
    ProcessInfo(1, 0, "65534", "/run/podman-init -- httpd -f"),
    ProcessInfo(6, 1, "65534", "httpd -f"),
    ProcessInfo(9, 6, "65534", "httpd -f (worker)"),
]
BASELINE = [
    FileChange("/etc", "changed"),
    FileChange("/etc/passwd", "added"),
    FileChange("/etc/group", "added"),
]


def _node(**changes: Any) -> ObservedNode:
    base: dict[str, Any] = {
        "name": "shop-dev-db-1",
        "labels": LABELS,
        "state": "running",
        "inspect": copy.deepcopy(INSPECT),
        "changes": BASELINE,
        "writable_files": [WritableFile("/tmp/cache.db", 0o644, 10, b"SQLi")],
        "facts_digest": "sha256:facts",
        "processes": ENTRYPOINT,
    }
    return ObservedNode(**{**base, **changes})


def _check(*nodes: ObservedNode, recorded: Any = None) -> list[Any]:
    if recorded is None:
        recorded = {n.name: n.facts_digest for n in nodes if n.managed}
    return environment_drift(
        [WANT], nodes, fleet="shop", environment="dev", now=NOW, recorded=recorded
    )


def test_a_node_as_apply_created_it_has_no_findings() -> None:
    assert config_differences(WANT, INSPECT) == []
    assert _check(_node()) == []


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for key in parents:
            doc = doc[key]
        doc[last] = value

    return change


CONFIG_CASES = [
    ("image_digest", _set("ImageDigest", "sha256:" + "b" * 64), Severity.CRITICAL),
    ("env", _set("Config.Env", ["DB_MODE=lax", "TOKEN=<secret>"]), Severity.HIGH),
    ("env", _set("Config.Env", ["DB_MODE=strict", "LD_PRELOAD=/tmp/x"]), Severity.HIGH),
    ("user", _set("Config.User", "0:0"), Severity.CRITICAL),
    ("read_only", _set("HostConfig.ReadonlyRootfs", False), Severity.CRITICAL),
    ("privileged", _set("HostConfig.Privileged", True), Severity.CRITICAL),
    ("no_new_privileges", _set("HostConfig.SecurityOpt", []), Severity.HIGH),
    (
        "capabilities",
        _set("HostConfig.CapAdd", ["CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"]),
        Severity.CRITICAL,
    ),
    ("capabilities", _set("EffectiveCaps", ["CAP_SYS_PTRACE"]), Severity.CRITICAL),
    (
        "mounts",
        _set(
            "Mounts",
            [
                {
                    "Type": "volume",
                    "Name": "zd-dev-db-data",
                    "Destination": "/var/lib/db",
                    "RW": True,
                },
                {"Type": "bind", "Source": "/", "Destination": "/host", "RW": True},
            ],
        ),
        Severity.CRITICAL,
    ),
    (
        "volumes",
        _set(
            "Mounts",
            [
                {
                    "Type": "volume",
                    "Name": "zd-dev-db-data",
                    "Destination": "/var/lib/db",
                    "RW": False,
                }
            ],
        ),
        Severity.HIGH,
    ),
    (
        "writable",
        _set("HostConfig.Tmpfs", {"/tmp": "", "/usr/local/bin": ""}),
        Severity.HIGH,
    ),
    ("memory", _set("HostConfig.Memory", 0), Severity.HIGH),
    ("cpu_quota", _set("HostConfig.CpuQuota", 400000), Severity.HIGH),
    ("pids", _set("HostConfig.PidsLimit", 0), Severity.HIGH),
    ("networks", _set("NetworkSettings.Networks", {}), Severity.HIGH),
    (
        "networks",
        _set("NetworkSettings.Networks", {"zd-shop-dev-api-to-db": {}, "podman": {}}),
        Severity.HIGH,
    ),
    (
        "published_ports",
        _set("HostConfig.PortBindings", {"5432/tcp": [{"HostPort": "5432"}]}),
        Severity.HIGH,
    ),
]


@pytest.mark.parametrize(("field", "change", "severity"), CONFIG_CASES)
def test_config_drift(
    field: str, change: Callable[[dict[str, Any]], None], severity: Severity
) -> None:
    node = _node()
    change(node.inspect)  # type: ignore[arg-type]
    (finding,) = _check(node)
    assert finding.kind == "config-drift"
    assert finding.severity == severity
    assert [d["field"] for d in finding.details["differences"]] == [field]
    assert finding.subject == "shop-dev-db-1"
    assert "DE.CM-09" in finding.csf
    assert field in finding.summary


def test_live_facts_changed_in_a_way_not_compared_field_by_field() -> None:
    node = _node(facts_digest="sha256:other")
    (finding,) = _check(node, recorded={node.name: "sha256:facts"})
    assert finding.kind == "config-drift"
    assert finding.details["differences"][0]["field"] == "live_facts"


FILE_CASES = [
    # (changes, writable files, expected kinds, evidence paths)
    (
        [*BASELINE, FileChange("/usr/bin/nc", "added")],
        None,
        ["file-changed"],
        ["/usr/bin/nc"],
    ),
    (
        [FileChange("/etc", "changed"), FileChange("/etc/shadow", "changed")],
        None,
        ["file-changed"],
        ["/etc/shadow"],
    ),
    (
        [FileChange("/srv/www/index.html", "deleted")],
        None,
        ["file-changed"],
        ["/srv/www/index.html"],
    ),
    ([FileChange("/evil", "added")], None, ["file-changed"], ["/evil"]),
    # Mount points podman creates when the image lacks them are not drift.
    (
        [
            FileChange("/etc", "changed"),
            FileChange("/etc/hosts", "added"),
            FileChange("/etc/resolv.conf", "added"),
            FileChange("/run", "added"),
            FileChange("/run/.containerenv", "added"),
            FileChange("/run/secrets", "added"),
        ],
        None,
        [],
        [],
    ),
    (
        [FileChange("/run", "added"), FileChange("/run/x.sh", "added")],
        None,
        ["file-changed"],
        ["/run/x.sh"],
    ),
    # Inside declared writable paths and volumes the layer may change.
    (
        [FileChange("/tmp/x", "added"), FileChange("/var/lib/db/row", "changed")],
        None,
        [],
        [],
    ),
    (
        BASELINE,
        [WritableFile("/tmp/run.sh", 0o644, 20, b"#!/bin/sh\n")],
        ["executable-added"],
        ["/tmp/run.sh"],
    ),
    (
        BASELINE,
        [WritableFile("/tmp/a.out", 0o600, 900, b"\x7fELF")],
        ["executable-added"],
        ["/tmp/a.out"],
    ),
    (
        BASELINE,
        [WritableFile("/var/lib/db/x", 0o755, 1, b"x")],
        ["executable-added"],
        ["/var/lib/db/x"],
    ),
    (BASELINE, [WritableFile("/tmp/notes.txt", 0o644, 5, b"hello")], [], []),
]


@pytest.mark.parametrize(("changes", "files", "kinds", "paths"), FILE_CASES)
def test_file_drift(
    changes: list[FileChange],
    files: list[WritableFile] | None,
    kinds: list[str],
    paths: list[str],
) -> None:
    found = _check(_node(changes=changes, writable_files=files))
    assert [f.kind for f in found] == kinds
    listed = [
        item["path"]
        for f in found
        for item in f.details.get("changes", []) + f.details.get("files", [])
    ]
    assert listed == paths
    for finding in found:
        assert finding.severity >= Severity.HIGH
        assert "DE.AE-02" in finding.csf


def test_missing_unmanaged_unrecorded_outdated_and_stopped() -> None:
    stray = ObservedNode("stray", {}, "running", {"Config": {"Image": "alpine"}})
    other_fleet = _node(name="other", labels={**LABELS, "io.zerodrift.fleet": "blog"})
    forged = _node(name="forged")
    old = _node(name="old", labels={**LABELS, "io.zerodrift.identity": "sha256:0"})
    removed = _node(name="gone", labels={**LABELS, "io.zerodrift.service": "cache"})
    paused = _node(name="paused", state="paused")
    found = _check(
        stray,
        other_fleet,
        forged,
        old,
        removed,
        paused,
        recorded={"old": None, "paused": "sha256:facts"},
    )
    kinds = sorted((f.subject, f.kind) for f in found)
    assert kinds == [
        ("forged", "unrecorded"),
        ("gone", "unmanaged"),
        ("old", "outdated"),
        ("paused", "not-running"),
        ("service:db", "missing"),
        ("stray", "unmanaged"),
    ]
    missing = next(f for f in found if f.kind == "missing")
    assert missing.details["running"] == 0  # a forged node does not count
    assert all(f.environment == "dev" for f in found)


def test_quarantined_nodes_are_skipped() -> None:
    node = _node(writable_files=[WritableFile("/tmp/x", 0o755, 1)])
    found = environment_drift(
        [WANT],
        [node],
        fleet="shop",
        environment="dev",
        now=NOW,
        skip=[node.name],
    )
    assert [f.kind for f in found] == ["missing"]


def test_findings_are_stable_and_render_as_ocsf() -> None:
    from zerodrift.detect.findings import ocsf_file_activities, to_ocsf

    node = _node(changes=[FileChange("/usr/bin/nc", "added")])
    first, second = _check(node), _check(node)
    assert [f.id for f in first] == [f.id for f in second]
    ocsf = to_ocsf(first[0])
    assert ocsf["class_uid"] == 2004
    assert ocsf["resources"][0]["name"] == "shop-dev-db-1"
    assert "DE.CM-09" in ocsf["metadata"]["labels"]
    (activity,) = ocsf_file_activities(first[0])
    assert activity["class_uid"] == 1001
    assert (activity["activity_id"], activity["type_uid"]) == (1, 100101)
    assert activity["file"]["path"] == "/usr/bin/nc"
    assert activity["metadata"]["correlation_uid"] == first[0].id
    assert ocsf_file_activities(_check(_node(name="x", labels={}))[0]) == []


PROCESS_CASES = [
    ([*ENTRYPOINT, ProcessInfo(14, 0, "65534", "/bin/sh")], [14]),
    (
        [*ENTRYPOINT, ProcessInfo(14, 0, "0", "sh"), ProcessInfo(15, 14, "0", "nc -l")],
        [14, 15],
    ),
    ([*ENTRYPOINT, ProcessInfo(20, 99, "65534", "orphan of a vanished parent")], [20]),
    (ENTRYPOINT, []),
]


@pytest.mark.parametrize(("processes", "pids"), PROCESS_CASES)
def test_processes_not_descending_from_the_entrypoint(
    processes: list[ProcessInfo], pids: list[int]
) -> None:
    found = _check(_node(processes=processes))
    listed = [p["pid"] for f in found for p in f.details["processes"]]
    assert listed == pids
    assert all(f.kind == "foreign-process" for f in found)
    assert all(f.severity == Severity.CRITICAL for f in found)


def test_flow_rules_in_the_node_namespace_are_compared_line_by_line() -> None:
    from dataclasses import replace

    from zerodrift.runtime import firewall

    net = "zd-shop-dev-api-to-db"
    flows = {net: {"direction": "in", "ports": ["5432/tcp"]}}
    want = replace(WANT, config={**CONFIG, "flows": flows})
    inspect = copy.deepcopy(INSPECT)
    inspect["NetworkSettings"]["Networks"][net] = {
        "IPAddress": "10.89.4.3",
        "IPPrefixLen": 24,
        "Gateway": "10.89.4.1",
    }
    rules = firewall.ruleset(flows, firewall.network_addresses(inspect))
    assert "ip saddr 10.89.4.0/24 tcp dport 5432 accept" in rules

    def found(live: str | None, *, read: bool = True, **changes: Any) -> list[Any]:
        node = _node(inspect=inspect, flow_rules=live, flow_rules_read=read, **changes)
        return environment_drift(
            [want], [node], fleet="shop", environment="dev", now=NOW, recorded=None
        )

    assert found(rules) == []
    assert found(None, read=False) == []  # not read: nothing claimed
    opened = rules.replace("policy drop", "policy accept", 1)
    (finding,) = found(opened)
    assert finding.kind == "config-drift"
    assert finding.severity is Severity.CRITICAL
    assert finding.details["differences"] == [
        {
            "field": "flow_rules",
            "expected": ["type filter hook input priority filter; policy drop;"],
            "actual": ["type filter hook input priority filter; policy accept;"],
        }
    ]
    (finding,) = found(None)
    assert finding.details["differences"][0]["actual"] == "no flow rules table"
    # Detached from its flow network: reported as networks, rules not judged.
    detached = copy.deepcopy(inspect)
    detached["NetworkSettings"]["Networks"] = {}
    node = _node(inspect=detached, flow_rules=rules, flow_rules_read=True)
    (finding,) = environment_drift(
        [want], [node], fleet="shop", environment="dev", now=NOW, recorded=None
    )
    assert [d["field"] for d in finding.details["differences"]] == ["networks"]
