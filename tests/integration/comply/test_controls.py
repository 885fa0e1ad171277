"""Every control passes and fails on real evidence, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update

from tests.conftest import PASSPHRASE
from tests.integration.comply.conftest import (
    MakeEvidence,
    add_revision,
    add_snapshot,
    at,
)
from zerodrift.comply.controls.audit import audit_trail_verified
from zerodrift.comply.controls.findings import findings_analysed_in_time
from zerodrift.comply.controls.inventory import data_flows_declared, inventory_recorded
from zerodrift.comply.controls.spec import spec_committed
from zerodrift.comply.controls.trust import trust_keys_per_environment
from zerodrift.comply.registry import Outcome, load_controls
from zerodrift.detect.findings import Finding, Severity, record_findings
from zerodrift.govern.audit import AuditTrail
from zerodrift.identify import build_inventory
from zerodrift.identify.snapshots import record_snapshot
from zerodrift.protect.keys import load_signer
from zerodrift.spec import LoadedSpec
from zerodrift.state import Database
from zerodrift.state.schema import audit_records, findings


def test_every_control_is_registered_with_known_subcategories() -> None:
    from zerodrift.comply.catalogs import load_catalogs

    csf = load_catalogs().framework("csf-2.0")
    controls = load_controls()
    assert {c.id for c in controls} >= {
        "inventory-recorded",
        "data-flows-declared",
        "audit-trail-verified",
        "spec-committed",
        "findings-analysed-in-time",
        "trust-keys-per-environment",
        "images-signed-attested",
        "hardening-resolved",
        "no-baked-secrets",
        "nodes-least-privilege",
        "nodes-within-max-age",
        "recovery-drill-recent",
        "gate-passed-before-deploy",
        "no-unmanaged-nodes",
        "incidents-responded-in-time",
        "evidence-chain-of-custody",
        "data-flows-enforced",
    }
    for control in controls:
        assert all(csf.item(s) is not None for s in control.csf), control.id


# --- inventory-recorded ---------------------------------------------------


def test_inventory_recent_and_current_passes(
    db: Database, spec: LoadedSpec, make_evidence: MakeEvidence
) -> None:
    add_revision(db, spec.digest, at(days=-2), "a" * 40, False)
    snapshot = add_snapshot(db, spec, at(hours=-1))
    verdict = inventory_recorded(make_evidence())
    assert verdict.outcome is Outcome.PASS, verdict.summary
    assert [(r.kind, r.id) for r in verdict.evidence] == [
        ("inventory-snapshot", str(snapshot))
    ]


def test_inventory_missing_stale_or_outdated_fails(
    db: Database, spec: LoadedSpec, make_evidence: MakeEvidence
) -> None:
    assert inventory_recorded(make_evidence()).outcome is Outcome.FAIL

    old = add_snapshot(db, spec, at(days=-3))
    verdict = inventory_recorded(make_evidence())
    assert verdict.outcome is Outcome.FAIL
    assert "3.0 d old" in verdict.summary
    assert verdict.evidence[0].id == str(old)

    add_snapshot(db, spec, at(hours=-2))
    add_revision(db, "sha256:" + "e" * 64, at(hours=-1), "b" * 40, False)
    verdict = inventory_recorded(make_evidence())
    assert verdict.outcome is Outcome.FAIL
    assert "spec changed" in verdict.summary
    # As of before the spec changed, the same evidence passed.
    assert inventory_recorded(make_evidence(as_of=at(hours=-1.5))).outcome is (
        Outcome.PASS
    )


def test_inventory_for_one_environment_ignores_other_environments(
    db: Database, spec: LoadedSpec, make_evidence: MakeEvidence
) -> None:
    add_snapshot(db, spec, at(hours=-1), environment="dev")
    assert inventory_recorded(make_evidence(environment="dev")).outcome is (
        Outcome.PASS
    )
    assert inventory_recorded(make_evidence(environment="prod")).outcome is (
        Outcome.FAIL
    )


# --- data-flows-declared --------------------------------------------------


def test_flows_declared_passes_on_the_example(
    db: Database, spec: LoadedSpec, make_evidence: MakeEvidence
) -> None:
    assert data_flows_declared(make_evidence()).outcome is Outcome.NOT_APPLICABLE
    add_snapshot(db, spec, at(hours=-1))
    verdict = data_flows_declared(make_evidence())
    assert verdict.outcome is Outcome.PASS
    assert verdict.summary.startswith("2 flows between 3 services")


def test_services_without_any_flow_fail(
    db: Database, spec: LoadedSpec, make_evidence: MakeEvidence
) -> None:
    data = spec.fleet.model_dump(by_alias=True)
    for service in data["services"].values():
        service["talks_to"] = []
    fleet = type(spec.fleet).model_validate(data)
    inventory = build_inventory(fleet, spec.digest)
    record_snapshot(db, inventory, taken_at=at(hours=-1), git_commit=None)
    verdict = data_flows_declared(make_evidence())
    assert verdict.outcome is Outcome.FAIL
    assert "no data flow declared" in verdict.summary


# --- audit-trail-verified -------------------------------------------------


def _trail(db: Database, times: list[str]) -> AuditTrail:
    clock = iter(times)
    trail = AuditTrail(db, now=lambda: next(clock))
    for n, _ in enumerate(times):
        trail.append("test.action", f"subject-{n}", {"n": n})
    return trail


def test_audit_trail_verifies_with_a_signed_checkpoint(
    db: Database, project: Path, make_evidence: MakeEvidence
) -> None:
    assert audit_trail_verified(make_evidence()).outcome is Outcome.NOT_APPLICABLE
    trail = _trail(db, [at(hours=-3), at(hours=-2)])
    signer = load_signer(
        project / ".zerodrift" / "keys" / "project.key", PASSPHRASE.encode()
    )
    trail.now = lambda: at(hours=-1)
    trail.checkpoint(signer)
    verdict = audit_trail_verified(make_evidence())
    assert verdict.outcome is Outcome.PASS, verdict.summary
    assert ("audit-checkpoint", "2") in [(r.kind, r.id) for r in verdict.evidence]


def test_tampered_audit_record_fails_and_history_still_verifies(
    db: Database, make_evidence: MakeEvidence
) -> None:
    _trail(db, [at(hours=-3), at(hours=-2), at(hours=-1)])
    with db.write() as conn:
        conn.execute(
            update(audit_records)
            .where(audit_records.c.seq == 3)
            .values(details='{"n":99}')
        )
    verdict = audit_trail_verified(make_evidence())
    assert verdict.outcome is Outcome.FAIL
    assert [(r.kind, r.id) for r in verdict.evidence] == [("audit-record", "3")]
    # The records that existed two hours ago were not touched.
    past = audit_trail_verified(make_evidence(as_of=at(hours=-2), historical=True))
    assert past.outcome is Outcome.PASS, past.summary
    assert past.summary.startswith("2 records verified")


# --- spec-committed -------------------------------------------------------


def test_spec_committed(db: Database, make_evidence: MakeEvidence) -> None:
    assert spec_committed(make_evidence()).outcome is Outcome.NOT_APPLICABLE
    add_revision(db, "sha256:" + "1" * 64, at(days=-2), "a" * 40, False)
    assert spec_committed(make_evidence()).outcome is Outcome.PASS
    add_revision(db, "sha256:" + "2" * 64, at(days=-1), "b" * 40, True)
    add_revision(db, "sha256:" + "3" * 64, at(hours=-1), None, True)
    verdict = spec_committed(make_evidence())
    assert verdict.outcome is Outcome.FAIL
    assert verdict.summary.startswith("2 of 3 spec revisions")
    assert [r.note for r in verdict.evidence] == ["not in git", "dirty at bbbbbbbbbbbb"]
    assert spec_committed(make_evidence(as_of=at(days=-1.5))).outcome is Outcome.PASS


# --- findings-analysed-in-time --------------------------------------------


def _finding(n: int, severity: Severity, found_at: str) -> Finding:
    return Finding(
        source="node",
        kind="file-changed",
        severity=severity,
        subject=f"web-{n}",
        summary=f"file {n} changed",
        found_at=found_at,
        environment="prod",
    )


def _resolve(db: Database, finding_id: str, when: str) -> None:
    with db.write() as conn:
        conn.execute(
            update(findings)
            .where(findings.c.id == finding_id)
            .values(status="resolved", resolved_at=when)
        )


def test_findings_analysed_in_time(db: Database, make_evidence: MakeEvidence) -> None:
    assert findings_analysed_in_time(make_evidence()).outcome is (
        Outcome.NOT_APPLICABLE
    )
    high, low = record_findings(
        db,
        [
            _finding(1, Severity.HIGH, at(hours=-30)),
            _finding(2, Severity.LOW, at(hours=-2)),
        ],
    ).new
    _resolve(db, high, at(hours=-20))
    verdict = findings_analysed_in_time(make_evidence())
    assert verdict.outcome is Outcome.PASS, verdict.summary
    assert verdict.summary == "2 findings analysed in time (1 open, within policy)"
    assert {r.id for r in verdict.evidence} == {high, low}


def test_late_or_overdue_findings_fail(
    db: Database, make_evidence: MakeEvidence
) -> None:
    late, overdue, fine = record_findings(
        db,
        [
            _finding(1, Severity.CRITICAL, at(hours=-30)),
            _finding(2, Severity.HIGH, at(hours=-25)),
            _finding(3, Severity.HIGH, at(hours=-1)),
        ],
    ).new
    _resolve(db, late, at(hours=-20))  # 10 h for a critical: policy says 4 h
    verdict = findings_analysed_in_time(make_evidence())
    assert verdict.outcome is Outcome.FAIL
    assert verdict.summary == "2 of 3 findings were not analysed in time"
    assert {r.id for r in verdict.evidence} == {late, overdue}
    # Other environments have no findings at all.
    dev = findings_analysed_in_time(make_evidence(environment="dev"))
    assert dev.outcome is Outcome.NOT_APPLICABLE
    del fine


# --- trust-keys-per-environment -------------------------------------------


def test_trust_policy_passes_on_the_example(make_evidence: MakeEvidence) -> None:
    verdict = trust_keys_per_environment(make_evidence())
    assert verdict.outcome is Outcome.PASS
    assert sorted(r.note or "" for r in verdict.evidence if r.kind == "trust-key") == [
        "project for dev",
        "project for prod",
        "project for staging",
    ]


def test_trust_policy_fails_without_keys(
    spec: LoadedSpec, project: Path, make_evidence: MakeEvidence
) -> None:
    data = spec.fleet.model_dump(by_alias=True)
    data["trust"]["environments"]["prod"] = []
    fleet = type(spec.fleet).model_validate(data)
    changed = LoadedSpec(fleet, spec.path, spec.digest)
    verdict = trust_keys_per_environment(make_evidence(spec=changed))
    assert verdict.outcome is Outcome.FAIL
    assert verdict.summary == "prod: no key"

    (project / "keys" / "project.pub").unlink()
    verdict = trust_keys_per_environment(make_evidence())
    assert verdict.outcome is Outcome.FAIL
    assert "key 'project' unusable" in verdict.summary


def test_trust_policy_of_an_unknown_past_is_not_applicable(
    db: Database, make_evidence: MakeEvidence
) -> None:
    add_revision(db, "sha256:" + "9" * 64, at(days=-1), "a" * 40, False)
    past = make_evidence(as_of=at(hours=-1), historical=True)
    assert trust_keys_per_environment(past).outcome is Outcome.NOT_APPLICABLE
