"""Runtime, recovery and gate controls on real reconcile rows and audit records.

Rows are written through the reconciler's own journal (then back-dated where a
test needs an age), on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import update

from tests.integration.comply.conftest import MakeEvidence, add_revision, at
from zerodrift.comply.controls.gate import gate_passed_before_deploy
from zerodrift.comply.controls.inventory import (
    data_flows_enforced,
    no_unmanaged_nodes,
)
from zerodrift.comply.controls.recovery import recovery_drill_recent
from zerodrift.comply.controls.runtime import (
    nodes_least_privilege,
    nodes_within_max_age,
)
from zerodrift.comply.registry import Outcome
from zerodrift.govern.audit import AuditTrail
from zerodrift.reconcile.desired import desired_state, network_name
from zerodrift.reconcile.journal import Journal
from zerodrift.runtime.firewall import NetworkAddress, ruleset
from zerodrift.spec import LoadedSpec
from zerodrift.state import Database
from zerodrift.state.schema import reconcile_nodes, reconcile_runs, recoveries

DIGEST = "sha256:" + "1" * 64


def deploy(
    db: Database,
    spec: LoadedSpec,
    env: str,
    *,
    when: str,
    commit: str = "c" * 40,
    status: str = "succeeded",
    rules_recorded: bool = True,
    digest: str = DIGEST,
) -> tuple[str, list[str]]:
    """Journal one apply of ``env`` creating a node per service; back-date it.

    Each creation is journalled as a step and also audited as apply does,
    with the flow rules it installed unless ``rules_recorded`` is false.
    """
    journal = Journal(db, env)
    run_id = journal.start("apply", spec.digest, commit)
    names = []
    for want in desired_state(
        spec.fleet, env, dict.fromkeys(spec.fleet.images, digest)
    ):
        name = f"{env}-{want.name}-{run_id[:6]}"
        step = journal.begin_step(
            "create", name, service=want.name, identity=want.identity, reason="new"
        )
        journal.node_created(
            name,
            service=want.name,
            identity=want.identity,
            image_digest=digest,
            generation=1,
            spec={"name": name, "image_digest": digest, "config": dict(want.config)},
            facts_digest="sha256:" + "f" * 64,
        )
        journal.end_step(step, "done")
        details: dict[str, object] = {"environment": env, "service": want.name}
        if want.config["flows"] and rules_recorded:
            details["flow_rules"] = _rules(want.config["flows"])
        AuditTrail(db, now=lambda: when).append("node.created", name, details)
        names.append(name)
    journal.finish(status, {})
    with db.write() as conn:
        conn.execute(
            update(reconcile_runs)
            .where(reconcile_runs.c.run_id == run_id)
            .values(started_at=when, finished_at=when)
        )
        conn.execute(
            update(reconcile_nodes)
            .where(reconcile_nodes.c.name.in_(names))
            .values(created_at=when)
        )
    return run_id, names


def _rules(flows: dict[str, object]) -> str:
    """The table apply records, for networks numbered as podman would."""
    addresses = {
        net: NetworkAddress((f"10.89.{i}.0/24",), (f"10.89.{i}.1",))
        for i, net in enumerate(sorted(flows), start=1)
    }
    return ruleset(flows, addresses)  # type: ignore[arg-type]


def set_node_config(db: Database, name: str, **config: object) -> None:
    import json

    with db.write() as conn:
        row = conn.execute(
            reconcile_nodes.select().where(reconcile_nodes.c.name == name)
        ).one()
        spec = json.loads(row.spec)
        spec["config"].update(config)
        conn.execute(
            update(reconcile_nodes)
            .where(reconcile_nodes.c.name == name)
            .values(spec=json.dumps(spec))
        )


# --- nodes-least-privilege --------------------------------------------------


def test_least_privilege_passes_on_hardened_nodes_and_fails_otherwise(
    db: Database, spec: LoadedSpec, make_evidence: MakeEvidence
) -> None:
    assert nodes_least_privilege(make_evidence()).outcome is Outcome.NOT_APPLICABLE

    _run, names = deploy(db, spec, "prod", when=at(hours=-2))
    verdict = nodes_least_privilege(make_evidence())
    assert verdict.outcome is Outcome.PASS, verdict.summary
    assert {r.id for r in verdict.evidence} == set(names)

    set_node_config(db, names[0], user="0:0", capabilities=["SYS_ADMIN"])
    verdict = nodes_least_privilege(make_evidence())
    assert verdict.outcome is Outcome.FAIL
    assert "1 of 3 nodes" in verdict.summary
    [ref] = verdict.evidence
    assert ref.id == names[0]
    assert "runs as root" in (ref.note or "")
    assert "SYS_ADMIN" in (ref.note or "")
    # Another environment's nodes are not this environment's problem.
    assert nodes_least_privilege(make_evidence(environment="dev")).outcome is (
        Outcome.NOT_APPLICABLE
    )
    # Before the nodes existed there was nothing to judge.
    early = make_evidence(as_of=at(hours=-3), historical=True)
    assert nodes_least_privilege(early).outcome is Outcome.NOT_APPLICABLE


def test_least_privilege_fails_without_limits(
    db: Database, spec: LoadedSpec, make_evidence: MakeEvidence
) -> None:
    _run, names = deploy(db, spec, "dev", when=at(hours=-1))
    set_node_config(db, names[1], resources={"memory": None, "pids": None})
    verdict = nodes_least_privilege(make_evidence(environment="dev"))
    assert verdict.outcome is Outcome.FAIL
    assert "no memory or process limit" in (verdict.evidence[0].note or "")


# --- nodes-within-max-age ---------------------------------------------------


def test_node_age_passes_when_young_and_fails_past_max_age(
    db: Database, spec: LoadedSpec, make_evidence: MakeEvidence
) -> None:
    assert nodes_within_max_age(make_evidence()).outcome is Outcome.NOT_APPLICABLE

    # The example's web and api live 7 days at most, db 30 days.
    _run, names = deploy(db, spec, "staging", when=at(days=-6))
    verdict = nodes_within_max_age(make_evidence())
    assert verdict.outcome is Outcome.PASS, verdict.summary
    assert len(verdict.evidence) == 3

    verdict = nodes_within_max_age(make_evidence(as_of=at(days=2)))
    assert verdict.outcome is Outcome.FAIL
    assert "2 of 3 nodes" in verdict.summary
    late = {r.id for r in verdict.evidence}
    assert late == {n for n in names if "-db-" not in n}

    # Replaced nodes no longer count.
    with db.write() as conn:
        conn.execute(update(reconcile_nodes).values(destroyed_at=at(days=1)))
    verdict = nodes_within_max_age(make_evidence(as_of=at(days=2)))
    assert verdict.outcome is Outcome.NOT_APPLICABLE


# --- recovery-drill-recent --------------------------------------------------


def add_recovery(
    db: Database,
    env: str,
    when: str,
    *,
    status: str = "succeeded",
    rto: float | None = 12.5,
    drill: bool = True,
) -> int:
    with db.write() as conn:
        result = conn.execute(
            recoveries.insert().values(
                run_id="r" * 32,
                environment=env,
                at_commit=None,
                drill=drill,
                status=status,
                started_at=when,
                finished_at=when,
                rto_seconds=rto,
                nodes=3,
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])


def test_recovery_drill_needed_in_every_deployed_environment(
    db: Database, spec: LoadedSpec, make_evidence: MakeEvidence
) -> None:
    verdict = recovery_drill_recent(make_evidence())
    assert verdict.outcome is Outcome.NOT_APPLICABLE

    deploy(db, spec, "dev", when=at(days=-20))
    deploy(db, spec, "staging", when=at(days=-20))
    verdict = recovery_drill_recent(make_evidence())
    assert verdict.outcome is Outcome.FAIL
    assert verdict.summary == (
        "dev: no recovery drill recorded; staging: no recovery drill recorded"
    )
    assert recovery_drill_recent(make_evidence(environment="prod")).outcome is (
        Outcome.NOT_APPLICABLE
    )

    for env in ("dev", "staging", "prod"):
        add_recovery(db, env, at(days=-10))
    verdict = recovery_drill_recent(make_evidence())
    assert verdict.outcome is Outcome.PASS, verdict.summary
    assert all("RTO 12.5 s" in (r.note or "") for r in verdict.evidence)

    # 30 days later (the default interval) the drills are too old.
    verdict = recovery_drill_recent(make_evidence(as_of=at(days=25)))
    assert verdict.outcome is Outcome.FAIL
    assert "35.0 d old" in verdict.summary


def test_recovery_drill_failed_or_without_rto_fails(
    db: Database, make_evidence: MakeEvidence
) -> None:
    add_recovery(db, "prod", at(days=-3))
    # A real (not drill) recovery does not count as a drill.
    add_recovery(db, "prod", at(days=-2), drill=False, status="failed")
    assert recovery_drill_recent(make_evidence(environment="prod")).outcome is (
        Outcome.PASS
    )
    failed = add_recovery(db, "prod", at(days=-1), status="failed")
    verdict = recovery_drill_recent(make_evidence(environment="prod"))
    assert verdict.outcome is Outcome.FAIL
    assert verdict.summary == "prod: newest drill failed"
    assert verdict.evidence[0].id == str(failed)
    # As of before the failed drill, the environment had passed.
    earlier = make_evidence(environment="prod", as_of=at(days=-1, hours=-1))
    assert recovery_drill_recent(earlier).outcome is Outcome.PASS

    add_recovery(db, "prod", at(hours=-1), rto=None)
    verdict = recovery_drill_recent(make_evidence(environment="prod"))
    assert "recorded no recovery time" in verdict.summary


# --- gate-passed-before-deploy ----------------------------------------------


def gate_run(
    db: Database,
    when: str,
    env: str,
    commit: str,
    verdict: str,
    *,
    images: dict[str, str] | None = None,
) -> int:
    """Audit a gate run as ``zerodrift gate`` does (older runs kept no images)."""
    details: dict[str, object] = {"verdict": verdict, "commit": commit}
    if images is not None:
        details["images"] = images
    record = AuditTrail(db, now=lambda: when).append("gate.run", env, details)
    return record.seq


def test_gate_must_pass_for_the_deployed_commit(
    db: Database, spec: LoadedSpec, make_evidence: MakeEvidence
) -> None:
    assert gate_passed_before_deploy(make_evidence()).outcome is (
        Outcome.NOT_APPLICABLE
    )
    gate_run(db, at(hours=-5), "*", "a" * 40, "passed")
    run_id, _ = deploy(db, spec, "prod", when=at(hours=-4), commit="b" * 40)
    verdict = gate_passed_before_deploy(make_evidence())
    assert verdict.outcome is Outcome.FAIL
    assert "prod: no passing gate run for bbbbbbbbbbbb" in verdict.summary
    assert verdict.evidence[0].id == run_id

    # A gate rejection of that commit does not count either...
    gate_run(db, at(hours=-3), "prod", "c" * 40, "rejected")
    deploy(db, spec, "prod", when=at(hours=-2), commit="c" * 40)
    assert gate_passed_before_deploy(make_evidence()).outcome is Outcome.FAIL

    # ...a pass for the commit before the deployment does.
    seq = gate_run(db, at(hours=-1, minutes=-30), "prod", "d" * 40, "passed")
    deploy(db, spec, "prod", when=at(hours=-1), commit="d" * 40)
    verdict = gate_passed_before_deploy(make_evidence())
    assert verdict.outcome is Outcome.PASS, verdict.summary
    assert ("audit-record", str(seq)) in [(r.kind, r.id) for r in verdict.evidence]

    # A failed deployment is not what runs; a pass recorded after the
    # deployment started does not vouch for it.
    deploy(db, spec, "prod", when=at(minutes=-20), commit="e" * 40, status="failed")
    assert gate_passed_before_deploy(make_evidence()).outcome is Outcome.PASS
    deploy(db, spec, "staging", when=at(minutes=-10), commit="e" * 40)
    gate_run(db, at(minutes=-5), "staging", "e" * 40, "passed")
    verdict = gate_passed_before_deploy(make_evidence())
    assert verdict.outcome is Outcome.FAIL
    assert verdict.summary.startswith("staging:")
    assert gate_passed_before_deploy(make_evidence(environment="prod")).outcome is (
        Outcome.PASS
    )


def test_gate_must_have_judged_the_deployed_images(
    db: Database, spec: LoadedSpec, make_evidence: MakeEvidence
) -> None:
    commit = "a" * 40
    judged = dict.fromkeys(spec.fleet.images, DIGEST)
    gate_run(db, at(hours=-3), "prod", commit, "passed", images=judged)
    deploy(db, spec, "prod", when=at(hours=-2), commit=commit)
    verdict = gate_passed_before_deploy(make_evidence())
    assert verdict.outcome is Outcome.PASS, verdict.summary

    # Images rebuilt after the gate and deployed at the same commit.
    rebuilt = "sha256:" + "2" * 64
    run_id, _ = deploy(
        db, spec, "prod", when=at(hours=-1), commit=commit, digest=rebuilt
    )
    verdict = gate_passed_before_deploy(make_evidence())
    assert verdict.outcome is Outcome.FAIL
    assert verdict.summary == (
        f"prod: deployed {rebuilt[:19]} at {commit[:12]}, which the gate did not judge"
    )
    assert verdict.evidence[0].id == run_id

    # Gating the rebuilt images first makes the next deployment count.
    gate_run(db, at(minutes=-30), "prod", commit, "passed", images={"api": rebuilt})
    deploy(db, spec, "prod", when=at(minutes=-20), commit=commit, digest=rebuilt)
    assert gate_passed_before_deploy(make_evidence()).outcome is Outcome.PASS


# --- no-unmanaged-nodes -----------------------------------------------------


def inventory_run(db: Database, when: str, env: str, unmanaged: list[str]) -> int:
    """Record what ``zerodrift inventory --env`` records after asking the runtime."""
    trail = AuditTrail(db, now=lambda: when)
    details = {"snapshot": 1, "spec_digest": "sha256:" + "5" * 64}
    return trail.append(
        "inventory.snapshot", env, {**details, "unmanaged": unmanaged}
    ).seq


def test_unmanaged_nodes_in_the_newest_runtime_inventory_fail(
    db: Database, spec: LoadedSpec, make_evidence: MakeEvidence
) -> None:
    assert no_unmanaged_nodes(make_evidence()).outcome is Outcome.NOT_APPLICABLE
    deploy(db, spec, "prod", when=at(hours=-5))
    # An inventory that did not ask the runtime proves nothing about it.
    AuditTrail(db, now=lambda: at(hours=-4)).append(
        "inventory.snapshot", "prod", {"snapshot": 1}
    )
    verdict = no_unmanaged_nodes(make_evidence())
    assert verdict.summary == "prod: no inventory of the runtime recorded"

    seen = inventory_run(db, at(hours=-3), "prod", ["stray-miner"])
    verdict = no_unmanaged_nodes(make_evidence())
    assert verdict.outcome is Outcome.FAIL
    assert verdict.summary == "prod: unmanaged nodes stray-miner"
    assert verdict.evidence[0].id == str(seen)

    clean = inventory_run(db, at(hours=-1), "prod", [])
    verdict = no_unmanaged_nodes(make_evidence())
    assert verdict.outcome is Outcome.PASS, verdict.summary
    assert verdict.evidence[0].id == str(clean)
    # As of two hours ago, the stray node was the newest word.
    earlier = make_evidence(as_of=at(hours=-2), historical=True)
    assert no_unmanaged_nodes(earlier).outcome is Outcome.FAIL
    # A day and more later, the clean inventory is too old (policy: 1 d).
    late = no_unmanaged_nodes(make_evidence(as_of=at(days=1)))
    assert "newest runtime inventory is 1.0 d old" in late.summary


def test_integrity_monitoring_needs_recent_node_and_host_checks(
    db: Database, spec: LoadedSpec, make_evidence: MakeEvidence
) -> None:
    from zerodrift.comply.controls.integrity import integrity_monitoring_recent

    def audit(action: str, subject: str, when: str) -> None:
        AuditTrail(db, now=lambda: when).append(action, subject, {})

    assert integrity_monitoring_recent(make_evidence()).outcome is (
        Outcome.NOT_APPLICABLE
    )
    deploy(db, spec, "dev", when=at(days=-3))
    audit("fim.init", "/var/lib/zerodrift/host.baseline", at(days=-3))
    verdict = integrity_monitoring_recent(make_evidence())
    assert verdict.outcome is Outcome.FAIL
    assert verdict.summary == (
        "environment dev: never checked; "
        "baseline /var/lib/zerodrift/host.baseline: never checked"
    )

    audit("check.finished", "dev", at(hours=-2))
    audit("fim.check", "/var/lib/zerodrift/host.baseline", at(hours=-30))
    verdict = integrity_monitoring_recent(make_evidence())
    assert verdict.outcome is Outcome.FAIL
    assert verdict.summary.startswith(
        "baseline /var/lib/zerodrift/host.baseline: last checked 30.0 h ago"
    )

    audit("fim.check", "/var/lib/zerodrift/host.baseline", at(hours=-1))
    verdict = integrity_monitoring_recent(make_evidence())
    assert verdict.outcome is Outcome.PASS, verdict.summary
    assert {r.kind for r in verdict.evidence} == {"audit-record"}
    # As of a day later, both checks are too old again.
    assert integrity_monitoring_recent(make_evidence(as_of=at(days=1))).outcome is (
        Outcome.FAIL
    )


# --- data-flows-enforced ----------------------------------------------------


def test_data_flows_enforced_on_deployed_networks(
    db: Database, spec: LoadedSpec, make_evidence: MakeEvidence
) -> None:
    assert data_flows_enforced(make_evidence()).outcome is Outcome.NOT_APPLICABLE

    _run, names = deploy(db, spec, "prod", when=at(hours=-2))
    verdict = data_flows_enforced(make_evidence())
    assert verdict.outcome is Outcome.PASS, verdict.summary
    # web -> api -> db: two flows, each network joined by both its ends.
    assert verdict.summary == (
        f"{len(names)} nodes on exactly their flows' networks (4 joins), "
        "rules installed one way"
    )

    web, api = (next(n for n in names if f"-{s}-" in n) for s in ("web", "api"))
    web_to_api = network_name(spec.fleet.name, "prod", "web", "api")
    api_to_db = network_name(spec.fleet.name, "prod", "api", "db")
    # A node joined to a network no flow declares, another missing its flow.
    set_node_config(db, web, networks={web_to_api: [], api_to_db: []})
    set_node_config(db, api, networks={web_to_api: ["api"]})
    verdict = data_flows_enforced(make_evidence())
    assert verdict.outcome is Outcome.FAIL
    assert {r.id: r.note for r in verdict.evidence} == {
        web: f"undeclared {api_to_db}",
        api: f"missing {api_to_db}",
    }
    # A node with a flow reversed, and one created before flows were one-way.
    db_node = next(n for n in names if "-db-" in n)
    set_node_config(db, web, networks={web_to_api: []})
    set_node_config(
        db, api, flows={web_to_api: {"direction": "out", "ports": ["8081/tcp"]}}
    )
    set_node_config(db, db_node, flows=None)
    verdict = data_flows_enforced(make_evidence())
    assert {r.id: r.note for r in verdict.evidence} == {
        api: f"missing {api_to_db}; no flow rule on {api_to_db}; "
        f"other direction or ports on {web_to_api}",
        db_node: "direction not enforced (created without flow rules)",
    }
    # Only prod's nodes were deployed; staging has none to judge.
    staging = make_evidence(environment="staging")
    assert data_flows_enforced(staging).outcome is Outcome.NOT_APPLICABLE
    # Before the deployment there was nothing to judge either.
    earlier = make_evidence(as_of=at(hours=-3))
    assert data_flows_enforced(earlier).outcome is Outcome.NOT_APPLICABLE
    # At a past time the current spec is judged only while it is the newest
    # revision recorded; after a later revision its content is unknown.
    add_revision(db, spec.digest, at(hours=-3), "a" * 40, False)
    past = make_evidence(historical=True, as_of=at(hours=-1))
    assert data_flows_enforced(past).outcome is Outcome.FAIL
    add_revision(db, "sha256:" + "9" * 64, at(hours=-1.5), "b" * 40, False)
    past = make_evidence(historical=True, as_of=at(hours=-1))
    assert data_flows_enforced(past).outcome is Outcome.NOT_APPLICABLE


def test_data_flows_enforced_needs_a_record_of_the_installed_rules(
    db: Database, spec: LoadedSpec, make_evidence: MakeEvidence
) -> None:
    _run, names = deploy(db, spec, "staging", when=at(hours=-2), rules_recorded=False)
    verdict = data_flows_enforced(make_evidence(environment="staging"))
    assert verdict.outcome is Outcome.FAIL
    # Every service of the example has a flow.
    assert {r.id: r.note for r in verdict.evidence} == dict.fromkeys(
        names, "no record of the flow rules installed"
    )
