"""The pure gate core: policy modes, waivers, spec, source and image rules."""

from __future__ import annotations

from datetime import date

import pytest

from tests.support.gate import (
    CYCLONEDX,
    GOLDEN,
    SLSA,
    InMemoryEvidence,
    StoredImage,
    asset,
)
from zerodrift.detect.findings import Severity
from zerodrift.errors import Location
from zerodrift.gate import (
    GateInput,
    GateReport,
    HardeningFinding,
    ImageFacts,
    Status,
    collect_image_facts,
    evaluate,
)
from zerodrift.gate.kubernetes import parse_manifests
from zerodrift.gate.source import CommitSignature, SourceFacts
from zerodrift.gate.terraform import load_plan
from zerodrift.spec import SpecLocator, parse_spec
from zerodrift.spec.models import Fleet

TODAY = date(2026, 12, 3)
KEY = "a" * 64
OTHER_KEY = "b" * 64
HEAD = "1" * 40

SPEC = """\
version: 1
name: shop
images:
  web:
    hardening:
      waivers:
        - check: shell-present
          reason: busybox httpd needs its shell
          expires: 2027-01-31
  api: {}
services:
  web: {image: web}
  api: {image: api}
environments:
  staging: {}
  prod: {}
"""


def _fleet(policy: str = "") -> tuple[Fleet, SpecLocator]:
    text = SPEC + policy
    loaded = parse_spec(text.encode(), "fleet.yaml")
    return loaded.fleet, SpecLocator(text, "fleet.yaml")


def _gate(policy: str = "", **changes: object) -> GateReport:
    fleet, locate = _fleet(policy)
    fields: dict[str, object] = {
        "spec_name": "fleet.yaml",
        "fleet": fleet,
        "today": TODAY,
        "locate": locate,
        "source": SourceFacts(True, HEAD),
    }
    fields.update(changes)
    return evaluate(GateInput(**fields))  # type: ignore[arg-type]


def _status(report: GateReport, rule: str, target: str | None = None) -> list[Status]:
    return [
        r.status
        for r in report.results
        if r.rule == rule and (target is None or r.target == target)
    ]


def _good(image: str, **changes: object) -> StoredImage:
    stored = StoredImage(
        digest=f"sha256:{image:0<64}"[:71],
        key_ids={KEY},
        commit=HEAD,
        verified_in={"staging"},
    )
    for key, value in changes.items():
        setattr(stored, key, value)
    return stored


def _images(**stored: StoredImage) -> dict[str, ImageFacts]:
    facts = collect_image_facts(InMemoryEvidence(stored), ["web", "api"])
    # The ancestry answer comes from git at the edge; here HEAD is an ancestor.
    return {
        name: ImageFacts(**{**f.__dict__, "commit_is_ancestor": f.commit == HEAD})
        for name, f in facts.items()
    }


def _image_gate(
    policy: str = "", env: str = "prod", **stored: StoredImage
) -> GateReport:
    images = _images(**({"web": _good("web"), "api": _good("api")} | stored))
    return _gate(
        policy, environment=env, images=images, trusted_key_ids=frozenset({KEY})
    )


# --- Spec and source ---------------------------------------------------------


def test_clean_committed_spec_passes() -> None:
    report = _gate()
    assert _status(report, "spec-valid") == [Status.PASS]
    assert _status(report, "spec-committed") == [Status.PASS]
    assert not report.rejected


def test_invalid_spec_rejects_with_each_problem() -> None:
    problems = (Location("fleet.yaml", 3, 1, "images"), "unknown key 'imagez'", None)
    report = evaluate(GateInput("fleet.yaml", None, TODAY, spec_problems=(problems,)))
    assert report.rejected
    [result] = report.results
    assert result.rule == "spec-valid"
    assert result.location is not None
    assert result.location.line == 3


def test_dirty_files_each_fail() -> None:
    report = _gate(source=SourceFacts(True, HEAD, ("fleet.yaml", "app/web/index.html")))
    failed = [r.target for r in report.results if r.status is Status.FAIL]
    assert failed == ["fleet.yaml", "app/web/index.html"]


def test_project_outside_git_fails() -> None:
    report = _gate(source=SourceFacts(False, None))
    assert _status(report, "spec-committed") == [Status.FAIL]


def test_commit_signature_rule_is_off_by_default() -> None:
    report = _gate(source=SourceFacts(True, HEAD, signature=CommitSignature("N")))
    assert _status(report, "commit-signed") == []


@pytest.mark.parametrize(
    ("signature", "allowed", "expected"),
    [
        (CommitSignature("G", "SHA256:abc", "ci@example"), "[]", Status.PASS),
        (CommitSignature("G", "SHA256:abc", "ci@example"), "[SHA256:abc]", Status.PASS),
        (
            CommitSignature("G", "SHA256:zzz", "dev@example"),
            "[SHA256:abc]",
            Status.FAIL,
        ),
        (CommitSignature("N"), "[]", Status.FAIL),
        (CommitSignature("U", "ABCDEF"), "[]", Status.FAIL),
    ],
)
def test_commit_signature_when_enforced(
    signature: CommitSignature, allowed: str, expected: Status
) -> None:
    policy = (
        "policy:\n  rules: {commit-signed: enforce}\n"
        f"  commits: {{allowed_keys: {allowed}}}\n"
    )
    report = _gate(policy, source=SourceFacts(True, HEAD, signature=signature))
    assert _status(report, "commit-signed") == [expected]


# --- Policy: modes and waivers ------------------------------------------------


def _plan_gate(policy: str = "", env: str | None = None) -> GateReport:
    plan = load_plan(asset("plan_update_in_place.json"), "plan.json")
    return _gate(policy, plans=[plan], environment=env)


def test_enforced_failure_rejects() -> None:
    report = _plan_gate()
    assert _status(report, "plan-immutable-update") == [Status.FAIL]
    assert report.rejected


def test_warn_mode_reports_without_rejecting() -> None:
    report = _plan_gate("policy:\n  rules: {plan-immutable-update: warn}\n")
    assert _status(report, "plan-immutable-update") == [Status.WARN]
    assert not report.rejected


def test_off_mode_drops_the_rule() -> None:
    report = _plan_gate("policy:\n  rules: {plan-immutable-update: off}\n")
    assert _status(report, "plan-immutable-update") == []


def test_environment_override_wins() -> None:
    policy = (
        "policy:\n  rules: {plan-immutable-update: warn}\n"
        "  environments:\n    prod: {rules: {plan-immutable-update: enforce}}\n"
    )
    assert not _plan_gate(policy, env="staging").rejected
    assert _plan_gate(policy, env="prod").rejected


def test_valid_waiver_accepts_failure_with_reason() -> None:
    policy = """\
policy:
  waivers:
    - rule: plan-immutable-update
      target: aws_instance.*
      reason: resize approved in change CHG-1234
      expires: 2026-12-31
"""
    report = _plan_gate(policy)
    [result] = [r for r in report.results if r.rule == "plan-immutable-update"]
    assert result.status is Status.WAIVED
    assert result.waiver == "resize approved in change CHG-1234"
    assert _status(report, "waiver-expired") == [Status.PASS]
    assert not report.rejected


def test_expired_waiver_fails_twice_and_points_at_the_spec() -> None:
    policy = """\
policy:
  waivers:
    - rule: plan-immutable-update
      target: aws_instance.web
      reason: resize approved in change CHG-1234
      expires: 2026-12-02
"""
    report = _plan_gate(policy)
    assert _status(report, "plan-immutable-update") == [Status.FAIL]
    [expired] = [r for r in report.results if r.rule == "waiver-expired"]
    assert expired.status is Status.FAIL
    assert expired.location is not None
    assert expired.location.line == 19


def test_waiver_for_other_environment_does_not_apply() -> None:
    policy = """\
policy:
  waivers:
    - rule: plan-immutable-update
      environments: [staging]
      reason: resize approved in change CHG-1234
      expires: 2027-01-01
"""
    assert _plan_gate(policy, env="prod").rejected
    assert not _plan_gate(policy, env="staging").rejected


def test_unknown_rule_in_policy_is_a_spec_error() -> None:
    with pytest.raises(Exception, match="plan-immutable-updat"):
        _fleet("policy:\n  rules: {plan-immutable-updat: off}\n")


def test_unknown_environment_in_policy_is_a_spec_error() -> None:
    with pytest.raises(Exception, match="unknown environment 'qa'"):
        _fleet("policy:\n  promotion: {prod: [qa]}\n")


# --- Images (against the in-memory evidence stand-in) -------------------------


def test_images_without_evidence_source_are_skipped_and_noted() -> None:
    report = _gate(environment="prod")
    assert set(_status(report, "image-signed")) == {Status.SKIP}
    assert any("evidence" in note for note in report.notes)
    assert not report.rejected


def test_fully_evidenced_images_pass() -> None:
    report = _image_gate("policy:\n  promotion: {prod: [staging]}\n")
    image_results = [r for r in report.results if r.rule.startswith("image-")]
    assert len(image_results) == 2 * 8
    assert {r.status for r in image_results} == {Status.PASS}


def test_image_missing_from_store_fails() -> None:
    report = _gate(
        environment="prod",
        images=_images(web=_good("web")),
        trusted_key_ids=frozenset({KEY}),
    )
    assert _status(report, "image-in-store", "api") == [Status.FAIL]
    assert _status(report, "image-in-store", "web") == [Status.PASS]


def test_unsigned_and_untrusted_images_fail() -> None:
    report = _image_gate(
        web=_good("web", key_ids=set()), api=_good("api", key_ids={OTHER_KEY})
    )
    results = {r.target: r for r in report.results if r.rule == "image-signed"}
    assert results["web"].status is Status.FAIL
    assert "not signed" in results["web"].message
    assert results["api"].status is Status.FAIL
    assert "not trusted for prod" in results["api"].message
    assert results["web"].location is not None
    assert results["web"].location.line == 4


@pytest.mark.parametrize(
    ("missing", "rule"),
    [
        (SLSA, "image-provenance"),
        (CYCLONEDX, "image-sbom"),
        (GOLDEN, "image-golden-manifest"),
    ],
)
def test_missing_attestation_fails(missing: str, rule: str) -> None:
    present = {SLSA, CYCLONEDX, GOLDEN} - {missing}
    report = _image_gate(web=_good("web", attestations=present))
    assert _status(report, rule, "web") == [Status.FAIL]
    assert _status(report, rule, "api") == [Status.PASS]


def test_provenance_commit_not_an_ancestor_fails() -> None:
    report = _image_gate(
        web=_good("web", commit="2" * 40), api=_good("api", commit=None)
    )
    assert _status(report, "image-provenance-ancestor", "web") == [Status.FAIL]
    assert _status(report, "image-provenance-ancestor", "api") == [Status.FAIL]


def test_promotion_requires_verification_in_staging() -> None:
    policy = "policy:\n  promotion: {prod: [staging]}\n"
    report = _image_gate(policy, web=_good("web", verified_in=set()))
    [result] = [
        r for r in report.results if r.rule == "image-promotion" and r.target == "web"
    ]
    assert result.status is Status.FAIL
    assert "staging" in result.message
    assert result.location is not None
    assert result.location.line == 18
    staging = _image_gate(policy, env="staging", web=_good("web", verified_in=set()))
    assert _status(staging, "image-promotion", "web") == [Status.PASS]


def test_high_hardening_finding_fails_unless_waived() -> None:
    findings = [
        HardeningFinding("shell-present", Severity.HIGH, "/bin/sh exists", "/bin/sh"),
        HardeningFinding("setuid-binary", Severity.CRITICAL, "setuid /usr/bin/su"),
        HardeningFinding("world-writable", Severity.LOW, "/tmp is 1777"),
    ]
    report = _image_gate(
        web=_good("web", hardening=findings), api=_good("api", hardening=findings)
    )
    statuses = {
        r.target: r.status for r in report.results if r.rule == "image-hardening"
    }
    # web's recipe waives shell-present until 2027-01-31; api's does not.
    assert statuses == {
        "web:shell-present:/bin/sh": Status.WAIVED,
        "web:setuid-binary": Status.FAIL,
        "api:shell-present:/bin/sh": Status.FAIL,
        "api:setuid-binary": Status.FAIL,
    }


def test_expired_hardening_waiver_does_not_apply() -> None:
    findings = [HardeningFinding("shell-present", Severity.HIGH, "/bin/sh", "/bin/sh")]
    images = _images(web=_good("web", hardening=findings), api=_good("api"))
    report = _gate(
        environment="prod",
        images=images,
        trusted_key_ids=frozenset({KEY}),
        today=date(2027, 2, 1),
    )
    assert _status(report, "image-hardening", "web:shell-present:/bin/sh") == [
        Status.FAIL
    ]


def test_manifests_feed_the_same_report() -> None:
    manifests = parse_manifests(asset("k8s_insecure.yaml").read_bytes(), "k.yaml")
    report = _gate(manifests=manifests)
    assert report.rejected
    assert {r.rule for r in report.failures()} >= {
        "manifest-image-digest",
        "manifest-pods-exec",
    }


def test_rule_catalog_matches_the_spec_identifiers() -> None:
    from zerodrift.gate import RULES
    from zerodrift.spec.models import GATE_RULES

    assert tuple(RULES) == GATE_RULES
    assert all(rule.help and rule.csf for rule in RULES.values())
