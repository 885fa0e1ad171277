"""apply, plan, recover and inventory against a real podman service."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.busybox_image import install_store
from zerodrift.runtime.podman import PodmanBackend

pytestmark = [pytest.mark.podman, pytest.mark.slow]

ENV = "dev"


def _ours(
    backend: PodmanBackend, project: Path, *, any_state: bool = False
) -> list[str]:
    fleet = _fleet(project)
    return sorted(
        n.name
        for n in backend.list_nodes()
        if n.labels.get("io.zerodrift.fleet") == fleet
        and (any_state or n.state == "running")
    )


def _fleet(project: Path) -> str:
    for line in (project / "fleet.yaml").read_text().splitlines():
        if line.startswith("name:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no fleet name")


def _state_bytes(project: Path) -> bytes:
    """The state database with its write-ahead log, as stored on disk."""
    return b"".join(p.read_bytes() for p in (project / ".zerodrift").glob("state.db*"))


def _exec(backend: PodmanBackend, node: str, script: str) -> tuple[bool, str]:
    result = backend.probe(node, {"command": ["/bin/sh", "-c", script], "timeout": 10})
    return result.healthy, result.detail


def test_plan_apply_replace_with_hardening_flows_and_secrets(
    rt_project: Path,
    cli: Any,
    backend: PodmanBackend,
) -> None:
    result = cli("plan", "--env", ENV, "--format", "json", cwd=rt_project)
    assert result.code == 1, result.err
    plan = json.loads(result.out)
    assert plan["summary"]["create"] == 3
    assert {a["kind"] for a in plan["actions"]} == {"create"}

    result = cli("apply", "--env", ENV, cwd=rt_project)
    assert result.code == 0, result.err
    assert "healthy" in result.err
    nodes = _ours(backend, rt_project)
    assert len(nodes) == 3

    result = cli("plan", "--env", ENV, "--format", "json", cwd=rt_project)
    assert result.code == 0, result.out
    assert json.loads(result.out)["summary"]["unchanged"] == 3

    # Hardening, as podman reports it.
    api = next(n for n in nodes if "-api-" in n)
    db = next(n for n in nodes if "-db-" in n)
    web = next(n for n in nodes if "-web-" in n)
    raw = backend.client.json("GET", f"/containers/{db}/json")
    host = raw["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["Privileged"] is False
    assert "no-new-privileges" in host["SecurityOpt"]
    assert raw["EffectiveCaps"] in (None, [])
    assert raw["Config"]["User"] == "65534:65534"
    assert host["Memory"] == 128 * 1024 * 1024
    assert host["PidsLimit"] == 256
    assert set(host["Tmpfs"]) == {"/tmp", "/run/secrets"}
    assert any(m["Type"] == "volume" for m in raw["Mounts"])
    _ok, out = _exec(backend, db, "touch /x 2>&1; id -u; cat /run/secrets/db-password")
    assert "Read-only file system" in out
    assert "65534" in out
    assert "pw-SECRET-77d2e0" in out  # the node gets its secret ...
    assert "pw-SECRET-77d2e0" not in json.dumps(raw)  # ... podman does not show it
    assert "tok-SECRET" not in json.dumps(backend.inspect(api))

    # Data flows: web -> api and api -> db are declared, web -> db is not.
    # (Addresses, not names: static busybox cannot use the libc resolver.)
    def reach(source: str, target: str, port: int) -> tuple[bool, str]:
        nets = backend.inspect(target)["NetworkSettings"]["Networks"]
        ok = False
        out = ""
        for net in nets.values():
            ip = net["IPAddress"]
            ok, out = _exec(
                backend,
                source,
                f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} {port}",
            )
            if "Content-type" in out:
                break
        return ok, out

    assert "Content-type" in reach(web, api, 8081)[1]
    assert "Content-type" in reach(api, db, 5432)[1]
    assert "Content-type" not in reach(web, db, 5432)[1]
    # Direction and ports of each flow: see test_flows.py.

    # A configuration change replaces the node; there is no update.
    spec = rt_project / "fleet.yaml"
    spec.write_text(
        spec.read_text().replace("DB_URL: http://db:5432/", "DB_URL: http://db:5432/v2")
    )
    result = cli("plan", "--env", ENV, "--format", "json", cwd=rt_project)
    actions = json.loads(result.out)["actions"]
    assert [(a["kind"], a["reason"], a["node"]) for a in actions] == [
        ("replace", "config changed", api)
    ]
    result = cli("apply", "--env", ENV, cwd=rt_project)
    assert result.code == 0, result.err
    after = _ours(backend, rt_project)
    assert api not in after
    assert len(after) == 3
    assert web in after

    # Secrets never reach plans, logs or the audit trail.
    audit = cli("audit", "log", "--format", "jsonl", cwd=rt_project)
    state = _state_bytes(rt_project)
    for text in (audit.out, result.out, result.err, plan.__repr__()):
        assert "SECRET" not in text
    assert b"SECRET" not in state
    assert "node.created" in audit.out
    assert "node.destroyed" in audit.out

    # Inventory joins running nodes with the spec.
    result = cli("inventory", "--env", ENV, "--format", "json", cwd=rt_project)
    assert result.code == 0, result.err
    services = {s["name"]: s for s in json.loads(result.out)["services"]}
    assert len(services["web"]["nodes"]) == 1
    node = services["web"]["nodes"][0]
    assert node["image_digest"].startswith("sha256:")
    assert node["age_seconds"] >= 0
    # Each image is listed with the digest the store holds, which runs.
    images = {i["name"]: i for i in json.loads(result.out)["images"]}
    assert images["web"]["digest"] == node["image_digest"]


def test_drift_unmanaged_prune_and_recover_drill(
    rt_project: Path,
    cli: Any,
    backend: PodmanBackend,
) -> None:
    result = cli("apply", "--env", ENV, cwd=rt_project)
    assert result.code == 0, result.out + result.err
    web = next(n for n in _ours(backend, rt_project) if "-web-" in n)
    db = next(n for n in _ours(backend, rt_project) if "-db-" in n)
    # A change made in place behind zerodrift's back is drift: replaced.
    (network,) = backend.inspect(db)["NetworkSettings"]["Networks"]
    backend.client.request(
        "POST", f"/networks/{network}/disconnect", json_body={"Container": db}
    )
    backend.quarantine(web)
    stray = backend.client.json(
        "POST",
        "/containers/create",
        json_body={"name": f"stray-{_fleet(rt_project)}", "image": _image(backend)},
    )
    plan = json.loads(cli("plan", "--env", ENV, "--format", "json", cwd=rt_project).out)
    reasons = {(a["node"], a["reason"]) for a in plan["actions"]}
    assert (web, "not running") in reasons  # quarantined: paused, no network
    assert (db, "drifted") in reasons
    assert any(u["node_id"] == stray["Id"] for u in plan["unmanaged"])
    inventory = cli("inventory", "--env", ENV, "--format", "json", cwd=rt_project)
    unmanaged = json.loads(inventory.out)["unmanaged_nodes"]
    assert f"stray-{_fleet(rt_project)}" in {n["name"] for n in unmanaged}
    assert _control(cli, rt_project, "no-unmanaged-nodes")["outcome"] == "fail"
    result = cli("apply", "--env", ENV, "--prune", cwd=rt_project)
    assert result.code == 0, result.err
    assert stray["Id"] not in {n.node_id for n in backend.list_nodes()}
    assert cli("inventory", "--env", ENV, cwd=rt_project).code == 0
    assert _control(cli, rt_project, "no-unmanaged-nodes")["outcome"] == "pass"
    assert web not in _ours(backend, rt_project)

    # Hardened nodes cannot change their image filesystem; events are seen.
    since = time.time() - 120
    api = next(n for n in _ours(backend, rt_project) if "-api-" in n)
    _ok, out = _exec(backend, api, "echo x > /tmp/scratch; echo x > /etc/passwd")
    assert "Read-only file system" in out
    # Only the user entries podman itself adds for uid 65534 at start.
    paths = {c.path for c in backend.changes(api)}
    assert paths <= {"/etc", "/etc/passwd", "/etc/group"}, paths
    events = list(backend.events(since=since, until=time.time()))
    assert any(e.name == api and e.action in ("start", "init") for e in events)

    before = _ours(backend, rt_project)
    result = cli("recover", "--env", ENV, "--drill", "--format", "json", cwd=rt_project)
    assert result.code == 0, result.err
    outcome = json.loads(result.out)
    assert outcome["destroyed"] == 3
    assert outcome["created"] == 3
    after = _ours(backend, rt_project)
    assert len(after) == 3
    assert not set(after) & set(before)
    with sqlite3.connect(rt_project / ".zerodrift" / "state.db") as conn:
        rto = conn.execute("SELECT rto_seconds, drill FROM recoveries").fetchall()
    assert len(rto) == 1
    assert rto[0][0] > 0
    assert rto[0][1] == 1


def test_recover_at_commit_uses_that_commits_spec_and_images(
    rt_project: Path, cli: Any, backend: PodmanBackend, busybox_layout: Path
) -> None:
    git = ["git", "-C", str(rt_project)]

    def commit(message: str) -> str:
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-qm", message], check=True)
        return subprocess.run(
            [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
        ).stdout.strip()

    subprocess.run([*git, "init", "-q"], check=True)
    (rt_project / ".gitignore").write_text(".zerodrift/\n")
    first = commit("v1")
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    v1_digest = backend.node(
        next(n for n in _ours(backend, rt_project) if "-api-" in n)
    ).labels["io.zerodrift.image-digest"]

    # v2: a new api image and a new setting.
    install_store(
        busybox_layout,
        rt_project / ".zerodrift" / "store",
        {"web": "web", "api": "api-v2", "db": "db"},
    )
    spec = rt_project / "fleet.yaml"
    spec.write_text(spec.read_text().replace("DB_URL: http://db:5432/", "DB_URL: v2"))
    commit("v2")
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    v2_api = next(n for n in _ours(backend, rt_project) if "-api-" in n)
    assert backend.node(v2_api).labels["io.zerodrift.image-digest"] != v1_digest

    result = cli(
        "recover", "--env", ENV, "--at", "HEAD~1", "--format", "json", cwd=rt_project
    )
    assert result.code == 0, result.err
    assert json.loads(result.out)["at_commit"] == first
    assert "deployed at" in result.err
    api = next(n for n in _ours(backend, rt_project) if "-api-" in n)
    assert api != v2_api
    assert backend.node(api).labels["io.zerodrift.image-digest"] == v1_digest
    assert "DB_URL=http://db:5432/" in backend.inspect(api)["Config"]["Env"]

    result = cli("recover", "--env", ENV, "--at", "no-such-commit", cwd=rt_project)
    assert result.code == 3
    assert "commit-unknown" in result.err


def test_sealed_secret_reaches_the_node_only(
    rt_project: Path,
    cli: Any,
    backend: PodmanBackend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"sealed-SECRET-9")))
    assert cli("seal", "secrets/db.sealed", cwd=rt_project).code == 0
    spec = rt_project / "fleet.yaml"
    spec.write_text(
        spec.read_text().replace(
            "source: env:SHOP_DB_PASSWORD", "source: sealed:secrets/db.sealed"
        )
    )
    result = cli("apply", "--env", ENV, cwd=rt_project)
    assert result.code == 0, result.err
    db = next(n for n in _ours(backend, rt_project) if "-db-" in n)
    _ok, out = _exec(backend, db, "cat /run/secrets/db-password")
    assert out.endswith("sealed-SECRET-9")
    raw = backend.client.json("GET", f"/containers/{db}/json")
    assert "sealed-SECRET" not in json.dumps(raw)
    assert b"sealed-SECRET" not in _state_bytes(rt_project)


def test_a_rotated_secret_reaches_new_nodes_of_the_service_named_to_replace(
    rt_project: Path,
    cli: Any,
    backend: PodmanBackend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    before = _ours(backend, rt_project)
    monkeypatch.setenv("SHOP_DB_PASSWORD", "pw-ROTATED-31c8")
    # The value is not part of the node identity: nothing to do by itself.
    assert cli("plan", "--env", ENV, cwd=rt_project).code == 0
    result = cli(
        "plan", "--env", ENV, "--replace", "db", "--format", "json", cwd=rt_project
    )
    assert result.code == 1, result.err
    actions = json.loads(result.out)["actions"]
    assert [(a["kind"], a["service"], a["reason"]) for a in actions] == [
        ("replace", "db", "replacement requested")
    ]
    result = cli("apply", "--env", ENV, "--replace", "db", cwd=rt_project)
    assert result.code == 0, result.err
    after = _ours(backend, rt_project)
    old_db = next(n for n in before if "-db-" in n)
    new_db = next(n for n in after if "-db-" in n)
    assert set(before) - {old_db} == set(after) - {new_db}
    _ok, out = _exec(backend, new_db, "cat /run/secrets/db-password")
    assert out.endswith("pw-ROTATED-31c8")
    log = cli(
        "audit", "log", "--action", "apply.started", "--format", "json", cwd=rt_project
    )
    assert json.loads(log.out)["records"][-1]["details"]["replace_requested"] == ["db"]

    wrong = cli("apply", "--env", ENV, "--replace", "dbx", cwd=rt_project)
    assert wrong.code == 3
    assert "error[unknown-service]" in wrong.err
    assert _ours(backend, rt_project) == after


def _image(backend: PodmanBackend) -> str:
    images = backend.client.json("GET", "/images/json")
    return str(images[0]["Id"])


def test_unhealthy_image_rolls_back_and_keeps_availability(
    rt_project: Path,
    cli: Any,
    busybox_layout: Path,
    backend: PodmanBackend,
) -> None:
    spec = rt_project / "fleet.yaml"
    spec.write_text(
        spec.read_text().replace(
            "    max_age: 7d\n    resources: {memory: 64Mi, cpus: 0.25}\n  api:",
            "    max_age: 7d\n    resources: {memory: 64Mi, cpus: 0.25}\n"
            "    rollout: {health_timeout: 3s}\n  api:",
        )
    )
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    web = next(n for n in _ours(backend, rt_project) if "-web-" in n)
    install_store(
        busybox_layout,
        rt_project / ".zerodrift" / "store",
        {"web": "broken", "api": "api", "db": "db"},
    )
    plan = json.loads(cli("plan", "--env", ENV, "--format", "json", cwd=rt_project).out)
    assert [(a["reason"], a["node"]) for a in plan["actions"]] == [
        ("image changed", web)
    ]
    result = cli("apply", "--env", ENV, cwd=rt_project)
    assert result.code == 4, result.err
    assert "rolling back" in result.err
    # The old node never went away: availability (replicas 1, max_unavailable 0).
    assert web in _ours(backend, rt_project)
    assert len(_ours(backend, rt_project)) == 3
    log = cli(
        "audit",
        "log",
        "--action",
        "apply.rollback",
        "--format",
        "jsonl",
        cwd=rt_project,
    )
    assert "apply.rollback" in log.out


def test_rollback_restores_nodes_removed_under_max_unavailable(
    rt_project: Path, cli: Any, busybox_layout: Path, backend: PodmanBackend
) -> None:
    spec = rt_project / "fleet.yaml"
    spec.write_text(
        spec.read_text()
        .replace("      web: {replicas: 1}\n", "      web: {replicas: 2}\n")
        .replace(
            "    max_age: 7d\n    resources: {memory: 64Mi, cpus: 0.25}\n  api:",
            "    max_age: 7d\n    resources: {memory: 64Mi, cpus: 0.25}\n"
            "    rollout: {health_timeout: 3s, max_surge: 1, max_unavailable: 1}\n"
            "  api:",
        )
    )
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    webs = [n for n in _ours(backend, rt_project) if "-web-" in n]
    identity = backend.node(webs[0]).identity
    assert len(webs) == 2
    install_store(
        busybox_layout,
        rt_project / ".zerodrift" / "store",
        {"web": "broken", "api": "api", "db": "db"},
    )
    result = cli("apply", "--env", ENV, cwd=rt_project)
    assert result.code == 4, result.err
    after = [n for n in _ours(backend, rt_project) if "-web-" in n]
    # One old node was allowed to go first; it was restored on the old digest.
    assert len(after) == 2
    assert len(set(after) & set(webs)) == 1
    assert {backend.node(n).identity for n in after} == {identity}


def test_node_dying_during_apply_fails_fast_and_keeps_the_old_node(
    rt_project: Path, cli: Any, busybox_layout: Path, backend: PodmanBackend
) -> None:
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    db = next(n for n in _ours(backend, rt_project) if "-db-" in n)
    install_store(
        busybox_layout,
        rt_project / ".zerodrift" / "store",
        {"web": "web", "api": "api", "db": "crash"},
    )
    began = time.monotonic()
    result = cli("apply", "--env", ENV, cwd=rt_project)
    assert result.code == 4, result.err
    assert "died" in result.err
    assert "its log ends: db: cannot open /var/lib/db" in result.err
    assert time.monotonic() - began < 30  # not the 60 s health timeout
    assert db in _ours(backend, rt_project)
    assert len(_ours(backend, rt_project)) == 3


def test_faults_clear_errors(
    rt_project: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = os.environ["ZERODRIFT_RUNTIME"]
    path = os.environ["PATH"]
    monkeypatch.setenv("ZERODRIFT_RUNTIME", "podman:///nonexistent/podman.sock")
    result = cli("plan", "--env", ENV, cwd=rt_project)
    assert result.code == 4
    assert "podman-unreachable" in result.err
    assert "Traceback" not in result.err
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("ZERODRIFT_RUNTIME", "podman://")
    result = cli("plan", "--env", ENV, cwd=rt_project)
    assert result.code == 4
    assert "podman-missing" in result.err

    index = rt_project / ".zerodrift" / "store" / "index.json"
    index.write_text(index.read_text().replace('"web"', '"other"'))
    result = cli("plan", "--env", ENV, cwd=rt_project)
    assert result.code == 3
    assert "image-missing" in result.err

    # Without a configured verifier every image is refused, before any use.
    from zerodrift.reconcile.session import set_verifier_factory
    from zerodrift.runtime.images import RefuseUnverified

    previous = set_verifier_factory(RefuseUnverified)
    index.write_text(index.read_text().replace('"other"', '"web"'))
    monkeypatch.setenv("ZERODRIFT_RUNTIME", runtime)
    monkeypatch.setenv("PATH", path)
    try:
        result = cli("apply", "--env", ENV, cwd=rt_project)
    finally:
        set_verifier_factory(previous)
    assert result.code == 1, result.err
    assert "image-unverified" in result.err
    assert "created" not in result.err

    # A secret that cannot be read stops apply before anything changes.
    monkeypatch.delenv("SHOP_DB_PASSWORD")
    result = cli("apply", "--env", ENV, cwd=rt_project)
    assert result.code == 3, result.err
    assert "SHOP_DB_PASSWORD" in result.err
    assert "created" not in result.err

    spec = rt_project / "fleet.yaml"
    spec.write_text(
        spec.read_text().replace(
            "    image: web\n", "    image: web\n    privileged: true\n"
        )
    )
    result = cli("plan", "--env", ENV, cwd=rt_project)
    assert result.code == 3
    assert "privileged" in result.err


def _zd(project: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.unsafe_cli", "-C", str(project), *args],
        cwd=Path(__file__).resolve().parents[3],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )


def _steps(project: Path) -> int:
    try:
        with sqlite3.connect(project / ".zerodrift" / "state.db", timeout=1) as conn:
            return int(
                conn.execute("SELECT count(*) FROM reconcile_steps").fetchone()[0]
            )
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("kill_after", [1, 2, 4])
def test_sigkill_during_apply_then_rerun_converges(
    rt_project: Path,
    cli: Any,
    backend: PodmanBackend,
    kill_after: int,
) -> None:
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    spec = rt_project / "fleet.yaml"
    spec.write_text(spec.read_text().replace("DB_URL: http://db:5432/", "DB_URL: x"))
    spec.write_text(
        spec.read_text().replace("memory: 64Mi, cpus: 0.25", "memory: 65Mi, cpus: 0.25")
    )
    base = _steps(rt_project)
    proc = _zd(rt_project, "apply", "--env", ENV)
    deadline = time.monotonic() + 60
    while _steps(rt_project) < base + kill_after and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    rerun = _zd(rt_project, "apply", "--env", ENV)
    _out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err.decode()
    nodes = _ours(backend, rt_project, any_state=True)
    assert len(nodes) == 3, nodes  # no duplicates, no orphans
    assert nodes == _ours(backend, rt_project)  # all of them running
    assert sorted(n.split("-")[1] for n in nodes) == ["api", "db", "web"]
    plan = cli("plan", "--env", ENV, "--format", "json", cwd=rt_project)
    assert plan.code == 0, plan.out
    live = {n.name for n in backend.list_nodes()}
    secrets = backend.client.json("GET", "/secrets/json") or []
    for secret in secrets:
        owner = secret["Spec"]["Name"][3:].rsplit(".", 1)[0]
        assert owner in live, secret["Spec"]["Name"]


def test_two_applies_exclude_each_other(
    rt_project: Path,
    cli: Any,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sqlalchemy import func, select

    from zerodrift.reconcile.lock import environment_lock
    from zerodrift.state import Database
    from zerodrift.state.schema import reconcile_runs, reconcile_steps

    monkeypatch.setenv("ZERODRIFT_DATABASE_URL", database_url)
    db = Database.open(database_url)
    with environment_lock(db, rt_project / ".zerodrift", ENV):
        result = cli("apply", "--env", ENV, cwd=rt_project)
    assert result.code == 4
    assert "environment-locked" in result.err
    # Released: the same apply now runs, journalled in this database.
    result = cli("apply", "--env", ENV, cwd=rt_project)
    assert result.code == 0, result.err
    with db.read() as conn:
        runs = conn.execute(select(func.count()).select_from(reconcile_runs)).scalar()
        steps = conn.execute(select(reconcile_steps.c.status)).scalars().all()
    db.close()
    assert runs == 1
    assert steps == ["done"] * 3


def _control(cli: Any, project: Path, control: str) -> dict[str, Any]:
    """The result of one control in the compliance report of the environment."""
    out = cli("report", "--env", ENV, "--format", "json", cwd=project).out
    report = json.loads(out)
    result: dict[str, Any] = next(
        c["result"] for c in report["controls"] if c["id"] == control
    )
    return result
