"""Data flows are one-way, proven with real connections between real nodes.

The example fleet declares ``web -> api:http`` and ``api -> db:sql``. After
``apply``, every pair of nodes is tried in both directions with busybox
``nc`` run inside the source node (addresses, not names: static busybox
cannot use the libc resolver).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from zerodrift.runtime import firewall
from zerodrift.runtime.podman import PodmanBackend

pytestmark = [pytest.mark.podman, pytest.mark.slow]

ENV = "dev"


def _nodes(backend: PodmanBackend, project: Path) -> dict[str, str]:
    fleet = next(
        line.split(":", 1)[1].strip()
        for line in (project / "fleet.yaml").read_text().splitlines()
        if line.startswith("name:")
    )
    return {
        str(n.service): n.name
        for n in backend.list_nodes()
        if n.labels.get("io.zerodrift.fleet") == fleet and n.state == "running"
    }


def _sh(backend: PodmanBackend, node: str, script: str) -> str:
    return backend.probe(
        node, {"command": ["/bin/sh", "-c", script], "timeout": 10}
    ).detail


def _addresses(backend: PodmanBackend, node: str) -> list[str]:
    nets = backend.inspect(node)["NetworkSettings"]["Networks"]
    return [net["IPAddress"] for net in nets.values()]


def _talk(
    backend: PodmanBackend, source: str, target: str, port: int, path: str = "/"
) -> tuple[bool, str]:
    """Send an HTTP request from ``source`` to every address of ``target``.

    Returns:
        Whether a connection was made, and what ``nc`` printed (its last
        200 characters).
    """
    outputs = []
    request = f"printf 'GET {path} HTTP/1.0\\r\\n\\r\\n'"
    for ip in _addresses(backend, target):
        out = _sh(
            backend,
            source,
            f"{request} | nc -w 2 {ip} {port} 2>&1; echo exit=$?",
        )
        if out.endswith("exit=0"):
            return True, out
        outputs.append(f"{ip}: {out}")
    return False, "; ".join(outputs)


def test_flows_are_one_way_and_limited_to_their_ports(
    rt_project: Path, cli: Any, backend: PodmanBackend
) -> None:
    result = cli("apply", "--env", ENV, cwd=rt_project)
    assert result.code == 0, result.err
    nodes = _nodes(backend, rt_project)
    web, api, db = nodes["web"], nodes["api"], nodes["db"]

    # Declared flows work both ways for a request and its response.
    ok, out = _talk(backend, web, api, 8081, "/v1/status.json")
    assert ok, out
    assert '{"status":"ok"}' in out
    ok, out = _talk(backend, api, db, 5432)
    assert ok, out

    # The target of a flow cannot open a connection back to its source ...
    ok, out = _talk(backend, api, web, 8080)
    assert not ok, out
    assert "exit=1" in out
    ok, out = _talk(backend, db, api, 8081)
    assert not ok, out
    # ... nor can services without a declared flow reach each other.
    assert not _talk(backend, web, db, 5432)[0]
    assert not _talk(backend, db, web, 8080)[0]

    # A flow allows only the port it names: api listens on 9000 as well,
    # which api reaches itself but web does not.
    _sh(backend, api, "httpd -p 9000 -h /srv/api")
    assert _talk(backend, api, api, 9000)[0]
    ok, out = _talk(backend, web, api, 9000)
    assert not ok, out

    # The rules live in each node's namespace, exactly as rendered.
    for node in (web, api, db):
        inspect = backend.inspect(node)
        live = backend.flow_rules(node)
        assert live is not None
        flows = _flows(rt_project, node)
        expected = firewall.ruleset(flows, firewall.network_addresses(inspect))
        assert live == expected
        assert firewall.differences(expected, live) == ([], [])
    # They were installed from the host: the image has no nft. Its processes
    # hold no capability (no CAP_NET_ADMIN to change the rules) and cannot
    # gain one.
    pid = backend.inspect(api)["State"]["Pid"]
    root = Path(f"/proc/{pid}/root")
    assert not any((root / d / "nft").exists() for d in ("bin", "sbin", "usr/sbin"))
    tree = _descendants(pid)
    assert len(tree) >= 2  # podman's init and httpd
    for host_pid in tree:
        status = Path(f"/proc/{host_pid}/status").read_text()
        fields = dict(line.split(":\t", 1) for line in status.splitlines())
        assert int(fields["CapEff"], 16) == 0
        assert int(fields["CapPrm"], 16) == 0
        assert fields["NoNewPrivs"].strip() == "1"

    # The audit trail holds the rules installed at creation.
    audit = cli("audit", "log", "--format", "jsonl", cwd=rt_project).out
    created = [
        json.loads(line)
        for line in audit.splitlines()
        if '"node.created"' in line and api in line
    ]
    assert created
    assert "ip saddr" in created[-1]["details"]["flow_rules"]


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, as host PIDs."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += _descendants(int(child))
    return found


def _flows(project: Path, node: str) -> dict[str, Any]:
    with sqlite3.connect(project / ".zerodrift" / "state.db") as conn:
        (spec,) = conn.execute(
            "SELECT spec FROM reconcile_nodes WHERE name = ?", (node,)
        ).fetchone()
    flows: dict[str, Any] = json.loads(spec)["config"]["flows"]
    return flows


def test_rules_are_in_force_before_the_workload_starts(
    rt_project: Path, cli: Any, backend: PodmanBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, bool, str | None]] = []
    install = firewall.install

    def watching_install(netns: str, rules: str) -> None:
        install(netns, rules)
        # The node owning this namespace is initialised, not started: its
        # workload has never run.
        (node,) = [
            inspect
            for inspect in (backend.inspect(n.name) for n in backend.list_nodes())
            if inspect["NetworkSettings"].get("SandboxKey") == netns
        ]
        state = node["State"]
        started = bool(state.get("StartedAt")) and not state["StartedAt"].startswith(
            "0001-"
        )
        seen.append((str(state["Status"]), started, firewall.installed(netns)))

    monkeypatch.setattr(firewall, "install", watching_install)
    result = cli("apply", "--env", ENV, cwd=rt_project)
    assert result.code == 0, result.err
    assert len(seen) == 3
    for status, started, listing in seen:
        assert (status, started) == ("initialized", False)
        assert listing is not None
        assert "policy drop" in listing


def test_node_fails_clearly_when_rules_cannot_be_installed(
    rt_project: Path,
    cli: Any,
    backend: PodmanBackend,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # An nft that refuses, as nft does without CAP_NET_ADMIN.
    fake = tmp_path / "bin"
    fake.mkdir()
    nft = fake / "nft"
    nft.write_text(
        "#!/bin/sh\necho 'Error: Could not process rule: Operation not permitted' >&2"
        "\nexit 1\n"
    )
    nft.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:/usr/bin:/bin")
    result = cli("apply", "--env", ENV, cwd=rt_project)
    assert result.code == 4, result.err
    assert "cannot enforce the data flows" in result.err
    assert "Operation not permitted" in result.err
    assert "Traceback" not in result.err
    # Nothing runs unenforced: the failed nodes were removed again.
    assert _nodes(backend, rt_project) == {}


def test_check_reports_flow_rules_changed_in_place(
    rt_project: Path, cli: Any, backend: PodmanBackend
) -> None:
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    api = _nodes(backend, rt_project)["api"]
    netns = backend.inspect(api)["NetworkSettings"]["SandboxKey"]

    def check() -> list[dict[str, Any]]:
        result = cli("check", "--env", ENV, "--format", "json", cwd=rt_project)
        (environment,) = json.loads(result.out)["environments"]
        found: list[dict[str, Any]] = environment["findings"]
        assert result.code == (1 if found else 0), result.err
        return found

    assert check() == []
    # Someone with root on the host opens api to everybody on its networks.
    subprocess.run(
        [
            "nsenter",
            f"--net={netns}",
            "nft",
            "insert",
            "rule",
            "inet",
            "zerodrift",
            "input",
            "ip",
            "saddr",
            "0.0.0.0/0",
            "accept",
        ],
        check=True,
    )
    (drift,) = check()
    assert (drift["kind"], drift["subject"], drift["severity"]) == (
        "config-drift",
        api,
        "critical",
    )
    (difference,) = drift["details"]["differences"]
    assert difference == {
        "field": "flow_rules",
        "expected": [],
        "actual": ["ip saddr 0.0.0.0/0 accept"],
    }
    # Without the table at all, every rule is reported missing.
    subprocess.run(
        ["nsenter", f"--net={netns}", "nft", "delete", "table", "inet", "zerodrift"],
        check=True,
    )
    (drift,) = check()
    (difference,) = drift["details"]["differences"]
    assert difference["actual"] == "no flow rules table"
    assert "policy drop" in " ".join(difference["expected"])
    # Both ends enforce a flow: with api's rules gone, web's still refuse
    # api's connection.
    web = _nodes(backend, rt_project)["web"]
    ok, out = _talk(backend, api, web, 8080)
    assert not ok, out


def _flush_input_rules(backend: PodmanBackend, node: str) -> None:
    """Empty a node's input chain from the host, as root can."""
    netns = backend.inspect(node)["NetworkSettings"]["SandboxKey"]
    command = ["nft", "flush", "chain", "inet", "zerodrift", "input"]
    subprocess.run(["nsenter", f"--net={netns}", *command], check=True)


def test_plan_and_apply_replace_a_node_whose_flow_rules_changed_in_place(
    rt_project: Path, cli: Any, backend: PodmanBackend
) -> None:
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    api = _nodes(backend, rt_project)["api"]

    def enforced() -> bool | None:
        node = backend.with_facts(backend.node(api), _flows(rt_project, api))
        return node.flows_enforced

    assert enforced() is True
    _flush_input_rules(backend, api)
    assert enforced() is False
    result = cli("plan", "--env", ENV, "--format", "json", cwd=rt_project)
    assert result.code == 1, result.err
    actions = json.loads(result.out)["actions"]
    assert [(a["kind"], a["node"], a["reason"]) for a in actions] == [
        ("replace", api, "drifted")
    ]
    shown = cli("plan", "--env", ENV, cwd=rt_project)
    assert f"what drifted: zerodrift check --env {ENV}" in shown.out
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    assert _nodes(backend, rt_project)["api"] != api
    assert cli("plan", "--env", ENV, cwd=rt_project).code == 0
    assert cli("check", "--env", ENV, cwd=rt_project).code == 0


def test_another_nftables_versions_listing_is_not_drift(
    rt_project: Path,
    cli: Any,
    backend: PodmanBackend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    # Stand-in for another nftables version: the declared table is written
    # differently from how this host's nft lists the same rules.
    render = firewall.ruleset

    def elsewhere(*args: Any) -> str:
        return render(*args).replace(
            "ct state established,related", "ct state related,established"
        )

    monkeypatch.setattr(firewall, "ruleset", elsewhere)
    result = cli("check", "--env", ENV, "--format", "json", cwd=rt_project)
    assert result.code == 0, result.out
    # A real change still is drift.
    _flush_input_rules(backend, _nodes(backend, rt_project)["api"])
    result = cli("check", "--env", ENV, "--format", "json", cwd=rt_project)
    assert result.code == 1
    (environment,) = json.loads(result.out)["environments"]
    fields = {
        d["field"] for f in environment["findings"] for d in f["details"]["differences"]
    }
    assert fields == {"flow_rules"}


def test_apply_cleans_up_only_its_own_fleets_networks(
    rt_project: Path, cli: Any, backend: PodmanBackend
) -> None:
    fleet = next(
        line.split(":", 1)[1].strip()
        for line in (rt_project / "fleet.yaml").read_text().splitlines()
        if line.startswith("name:")
    )
    labels = {"io.zerodrift.managed": "true", "io.zerodrift.environment": ENV}
    # Unused networks of the same environment name: one of another fleet on
    # this podman, one of this fleet that no declared flow needs any more.
    other = f"zd-other{fleet}-{ENV}-a-to-b"
    stale = f"zd-{fleet}-{ENV}-gone-to-away"
    backend.ensure_network(other, {**labels, "io.zerodrift.fleet": f"other{fleet}"})
    backend.ensure_network(stale, {**labels, "io.zerodrift.fleet": fleet})
    try:
        assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
        left = backend.networks(ENV)
        assert other in left
        assert stale not in left
        assert f"zd-{fleet}-{ENV}-web-to-api" in left
    finally:
        backend.remove_network(other)
