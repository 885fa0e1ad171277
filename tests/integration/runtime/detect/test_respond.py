"""The drift playbook on real nodes: replace, quarantine, evidence, destroy."""

from __future__ import annotations

import io
import json
import sqlite3
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.integration.runtime.detect.test_check import ENV, _exec, _node
from zerodrift.runtime.podman import PodmanBackend

pytestmark = [pytest.mark.podman, pytest.mark.slow]


def _running(backend: PodmanBackend, project: Path, service: str) -> list[str]:
    fleet = next(
        line.split(":", 1)[1].strip()
        for line in (project / "fleet.yaml").read_text().splitlines()
        if line.startswith("name:")
    )
    return sorted(
        n.name
        for n in backend.list_nodes()
        if n.labels.get("io.zerodrift.fleet") == fleet
        and n.service == service
        and n.state == "running"
    )


def test_respond_replaces_the_node_and_keeps_signed_evidence(
    rt_project: Path, cli: Any, backend: PodmanBackend, tmp_path: Path
) -> None:
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    api = _node(backend, rt_project, "api")
    before = _running(backend, rt_project, "api")
    _exec(backend, api, "printf '#!/bin/sh\\nid\\n' > /tmp/implant.sh", detach=False)
    _exec(backend, api, "exec sleep 120", detach=True)
    # dev's policy is "alert": check --respond reports and changes nothing.
    result = cli("check", "--env", ENV, "--respond", cwd=rt_project)
    assert result.code == 1
    assert _running(backend, rt_project, "api") == before

    result = cli("respond", api, "--format", "json", cwd=rt_project)
    assert result.code == 0, result.err
    incident = json.loads(result.out)
    assert incident["status"] == "resolved"
    assert incident["step"] == "verified"
    assert incident["ttr_seconds"] > 0
    # A manual response takes over what check found about the node.
    assert {f["kind"] for f in incident["findings"]} == {
        "executable-added",
        "foreign-process",
    }
    assert incident["detected_at"] < incident["opened_at"]
    with sqlite3.connect(rt_project / ".zerodrift" / "state.db") as conn:
        statuses = conn.execute(
            "SELECT DISTINCT status FROM findings WHERE subject = ?", (api,)
        ).fetchall()
    assert statuses == [("resolved",)]
    with sqlite3.connect(rt_project / ".zerodrift" / "state.db") as conn:
        links = conn.execute(
            "SELECT DISTINCT incident_id, resolved_at FROM findings WHERE subject = ?",
            (api,),
        ).fetchall()
    # Each finding names the incident that answered it, resolved when it was.
    assert links == [(incident["id"], incident["resolved_at"])]
    replacement = incident["replacement"]
    after = _running(backend, rt_project, "api")
    assert api not in after
    assert replacement in after
    assert len(after) == len(before)
    assert api not in {n.name for n in backend.list_nodes()}

    # The environment is clean again, and the incident is listed.
    assert cli("check", "--env", ENV, cwd=rt_project).code == 0
    listed = json.loads(cli("incidents", "--format", "json", cwd=rt_project).out)[
        "incidents"
    ]
    assert [i["id"] for i in listed] == [incident["id"]]
    shown = cli("incidents", "show", incident["id"][:6], cwd=rt_project)
    assert shown.code == 0
    assert api in shown.out

    # Evidence: content-addressed, with the implant and the shell in it.
    store = rt_project / ".zerodrift" / "evidence" / "sha256"
    manifest = json.loads((store / incident["evidence"].partition(":")[2]).read_bytes())
    items = manifest["items"]
    assert set(items) >= {
        "inspect.json",
        "processes.json",
        "logs.txt",
        "files.tar",
        "findings.json",
    }
    blob = (store / items["files.tar"]["digest"].partition(":")[2]).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        implant = tar.extractfile("tmp/implant.sh")
        assert implant is not None
        assert implant.read() == b"#!/bin/sh\nid\n"
    processes = (store / items["processes.json"]["digest"][7:]).read_text()
    assert "sleep 120" in processes
    audit = cli("audit", "log", "--format", "json", cwd=rt_project).out
    for action in (
        "incident.opened",
        "incident.quarantined",
        "evidence.captured",
        "incident.resolved",
    ):
        assert action in audit

    # Export with a signed manifest; verify; tampering is caught.
    archive = tmp_path / "evidence.tar"
    result = cli(
        "evidence", "export", incident["id"], "-o", str(archive), cwd=rt_project
    )
    assert result.code == 0, result.err
    assert cli("evidence", "verify", str(archive), cwd=rt_project).code == 0
    tampered = tmp_path / "tampered.tar"
    with tarfile.open(archive) as src, tarfile.open(tampered, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member)
            assert data is not None
            body = data.read()
            if member.name.endswith(items["files.tar"]["digest"][7:]):
                body = body.replace(b"id\n", b"ls\n")
            member.size = len(body)
            dst.addfile(member, io.BytesIO(body))
    result = cli("evidence", "verify", str(tampered), cwd=rt_project)
    assert result.code == 1
    assert "files.tar" in result.err


def test_respond_refuses_a_container_that_is_not_a_node(
    rt_project: Path, cli: Any
) -> None:
    result = cli("respond", "no-such-node", "--env", ENV, cwd=rt_project)
    assert result.code == 3
    assert "not a node" in result.err


def test_policies_auto_replaces_approve_waits_and_data_survives(
    rt_project: Path, cli: Any, backend: PodmanBackend
) -> None:
    spec = rt_project / "fleet.yaml"
    text = spec.read_text()
    dev = text.index("  dev:")
    spec.write_text(
        text[:dev] + text[dev:].replace("response: alert", "response: auto", 1)
    )
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    api = _node(backend, rt_project, "api")
    db = _node(backend, rt_project, "db")
    # The data the service keeps (written from the host: the image leaves
    # the volume's folder owned by root).
    (volume,) = backend.inspect(db)["Mounts"]
    Path(volume["Source"], "rows.txt").write_text("row-1\n")
    _exec(backend, api, "exec sleep 120", detach=True)
    _exec(backend, db, "exec sleep 120", detach=True)

    result = cli("check", "--env", ENV, "--respond", cwd=rt_project)
    assert result.code == 1, result.err
    incidents = json.loads(cli("incidents", "--format", "json", cwd=rt_project).out)[
        "incidents"
    ]
    state = {i["node"]: (i["policy"], i["status"]) for i in incidents}
    assert state == {api: ("auto", "resolved"), db: ("approve", "awaiting-approval")}
    assert api not in {n.name for n in backend.list_nodes()}
    assert db in _running(backend, rt_project, "db")

    # Seen again: the open incident is not duplicated.
    assert cli("check", "--env", ENV, "--respond", cwd=rt_project).code == 1
    again = json.loads(cli("incidents", "--format", "json", cwd=rt_project).out)
    assert len(again["incidents"]) == 2

    # A person approves; the stateful node's volume survives its replacement.
    result = cli("respond", db, "--format", "json", cwd=rt_project)
    assert result.code == 0, result.err
    replacement = json.loads(result.out)["replacement"]
    probe = backend.probe(
        replacement,
        {"command": ["/bin/sh", "-c", "cat /var/lib/db/rows.txt"], "timeout": 5},
    )
    assert probe.healthy
    assert "row-1" in probe.detail
    assert cli("check", "--env", ENV, cwd=rt_project).code == 0


def test_a_responder_killed_after_quarantine_resumes_without_a_second_node(
    rt_project: Path, cli: Any, backend: PodmanBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zerodrift.respond.playbook import Responder

    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    web = _node(backend, rt_project, "web")
    replicas = len(_running(backend, rt_project, "web"))
    _exec(backend, web, "exec sleep 120", detach=True)

    def killed(*_args: Any) -> Any:
        raise KeyboardInterrupt  # the process dies between two steps

    with monkeypatch.context() as patch:
        patch.setattr(Responder, "_capture", killed)
        cli("respond", web, cwd=rt_project)
    (incident,) = json.loads(cli("incidents", "--format", "json", cwd=rt_project).out)[
        "incidents"
    ]
    assert (incident["status"], incident["step"]) == ("responding", "quarantined")
    assert backend.inspect(web)["State"]["Status"] == "paused"
    # Quarantined nodes are accounted for by their incident, not re-reported.
    assert cli("check", "--env", ENV, cwd=rt_project).code == 0

    result = cli("respond", web, "--format", "json", cwd=rt_project)
    assert result.code == 0, result.err
    resumed = json.loads(result.out)
    assert resumed["id"] == incident["id"]
    assert resumed["replacement"] == incident["replacement"]
    assert resumed["status"] == "resolved"
    assert resumed["evidence"]
    assert len(_running(backend, rt_project, "web")) == replicas
    assert web not in {n.name for n in backend.list_nodes()}


def test_circuit_breaker_keeps_the_node_quarantined_after_repeated_drift(
    rt_project: Path, cli: Any, backend: PodmanBackend
) -> None:
    spec = rt_project / "fleet.yaml"
    text = spec.read_text()
    dev = text.index("  dev:")
    spec.write_text(
        text[:dev]
        + text[dev:].replace(
            "response: alert",
            "response: auto\n    circuit_breaker: {drifts: 1, window: 1h}",
            1,
        )
    )
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    first = _node(backend, rt_project, "web")
    _exec(backend, first, "exec sleep 120", detach=True)
    assert cli("check", "--env", ENV, "--respond", cwd=rt_project).code == 1
    second = _node(backend, rt_project, "web")
    _exec(backend, second, "exec sleep 120", detach=True)
    result = cli("check", "--env", ENV, "--respond", cwd=rt_project)
    assert result.code == 1
    assert "circuit breaker open" in result.err
    incidents = json.loads(cli("incidents", "--format", "json", cwd=rt_project).out)[
        "incidents"
    ]
    assert [(i["node"], i["status"]) for i in incidents] == [
        (first, "resolved"),
        (second, "circuit-open"),
    ]
    assert incidents[1]["evidence"]
    assert backend.inspect(second)["State"]["Status"] == "paused"
    with sqlite3.connect(rt_project / ".zerodrift" / "state.db") as conn:
        alarms = conn.execute(
            "SELECT severity FROM findings WHERE kind = 'circuit-open'"
        ).fetchall()
    assert alarms == [("critical",)]
    # A person decides: respond replaces the held node.
    result = cli("respond", second, "--format", "json", cwd=rt_project)
    assert result.code == 0, result.err
    assert json.loads(result.out)["status"] == "resolved"
    assert second not in {n.name for n in backend.list_nodes()}


def test_tampered_image_storage_is_purged_reloaded_and_redeployed(
    rt_project: Path, cli: Any, backend: PodmanBackend
) -> None:
    spec = rt_project / "fleet.yaml"
    text = spec.read_text().replace("response: approve", "response: auto")
    dev = text.index("  dev:")
    spec.write_text(
        text[:dev] + text[dev:].replace("response: alert", "response: auto", 1)
    )
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    before = {s: _running(backend, rt_project, s) for s in ("web", "api", "db")}
    web = before["web"][0]
    image = backend.client.json("GET", f"/images/{backend.inspect(web)['Image']}/json")
    page = Path(image["GraphDriver"]["Data"]["UpperDir"]) / "srv" / "www" / "index.html"
    original = page.read_bytes()
    try:
        page.write_bytes(b"<h1>defaced</h1>\n")
        result = cli("check", "--env", ENV, "--respond", cwd=rt_project)
    finally:
        if page.exists():  # the response removes the layer folder
            page.write_bytes(original)
    assert result.code == 1, result.err
    incidents = json.loads(cli("incidents", "--format", "json", cwd=rt_project).out)[
        "incidents"
    ]
    old = {node for nodes in before.values() for node in nodes}
    # One incident per node of the tampered images (all three share the
    # layer), each with evidence, resolved by a fresh node.
    assert {i["node"] for i in incidents} == old
    assert {i["status"] for i in incidents} == {"resolved"}
    assert all(i["evidence"] for i in incidents)
    after = {s: _running(backend, rt_project, s) for s in ("web", "api", "db")}
    assert {s: len(n) for s, n in after.items()} == {"web": 1, "api": 1, "db": 1}
    assert not old & {n for nodes in after.values() for n in nodes}
    assert {i["replacement"] for i in incidents} == {
        n for nodes in after.values() for n in nodes
    }
    # The storage holds the image as the verified store has it again.
    assert page.read_bytes() == original
    assert cli("check", "--env", ENV, cwd=rt_project).code == 0
    audit = cli("audit", "log", "--format", "json", cwd=rt_project).out
    assert "image.purged" in audit


def _deface(backend: PodmanBackend, project: Path) -> tuple[Path, bytes]:
    """Write into the web image's layer in podman's storage; return the file."""
    web = _running(backend, project, "web")[0]
    image = backend.client.json("GET", f"/images/{backend.inspect(web)['Image']}/json")
    page = Path(image["GraphDriver"]["Data"]["UpperDir"]) / "srv" / "www" / "index.html"
    original = page.read_bytes()
    page.write_bytes(b"<h1>defaced</h1>\n")
    return page, original


def test_tampered_image_under_approve_waits_then_one_approval_reloads_it(
    rt_project: Path, cli: Any, backend: PodmanBackend
) -> None:
    spec = rt_project / "fleet.yaml"
    text = spec.read_text()
    dev = text.index("  dev:")
    spec.write_text(
        text[:dev] + text[dev:].replace("response: alert", "response: approve", 1)
    )
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    before = {s: _running(backend, rt_project, s) for s in ("web", "api", "db")}
    page, original = _deface(backend, rt_project)
    try:
        assert cli("check", "--env", ENV, "--respond", cwd=rt_project).code == 1
        waiting = json.loads(cli("incidents", "--format", "json", cwd=rt_project).out)
        # Every node of the image waits for a person; nothing was touched.
        assert {i["status"] for i in waiting["incidents"]} == {"awaiting-approval"}
        assert {i["node"] for i in waiting["incidents"]} == {
            n for nodes in before.values() for n in nodes
        }
        assert page.read_bytes() == b"<h1>defaced</h1>\n"

        # Approving one node answers the image: all its nodes, one reload.
        result = cli("respond", before["api"][0], "--format", "json", cwd=rt_project)
    finally:
        if page.exists():
            page.write_bytes(original)
    assert result.code == 0, result.err
    assert json.loads(result.out)["node"] == before["api"][0]
    done = json.loads(cli("incidents", "--format", "json", cwd=rt_project).out)
    assert {i["status"] for i in done["incidents"]} == {"resolved"}
    assert page.read_bytes() == original
    assert cli("check", "--env", ENV, cwd=rt_project).code == 0
    log = cli("audit", "log", "--action", "incident.approved", "--format", "json",
              cwd=rt_project)  # fmt: skip
    assert len(json.loads(log.out)["records"]) == 3


def test_respond_image_answers_what_alert_only_reported(
    rt_project: Path, cli: Any, backend: PodmanBackend
) -> None:
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    page, original = _deface(backend, rt_project)
    try:
        checked = cli("check", "--env", ENV, "--respond", cwd=rt_project)
        assert checked.code == 1
        assert "only reported" in checked.err
        assert (
            json.loads(cli("incidents", "--format", "json", cwd=rt_project).out)[
                "incidents"
            ]
            == []
        )
        usage = cli("respond", "--image", "web", cwd=rt_project)
        assert usage.code == 3
        assert "--env" in usage.err
        result = cli(
            "respond", "--image", "web", "--env", ENV, "--format", "json",
            cwd=rt_project,
        )  # fmt: skip
    finally:
        if page.exists():
            page.write_bytes(original)
    assert result.code == 0, result.err
    answered = json.loads(result.out)["incidents"]
    assert len(answered) == 3
    assert {i["status"] for i in answered} == {"resolved"}
    assert cli("check", "--env", ENV, cwd=rt_project).code == 0
    unknown = cli("respond", "--image", "web", "--env", ENV, cwd=rt_project)
    assert unknown.code == 3
    assert "no open image-tampered finding" in unknown.err
