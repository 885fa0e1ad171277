"""Status rules of coverage (pure: control results and attestations in)."""

from __future__ import annotations

import datetime as dt

from zerodrift.comply.attestations import Attestation
from zerodrift.comply.catalogs import load_catalogs
from zerodrift.comply.coverage import Coverage, Status, evaluate_coverage
from zerodrift.comply.registry import Control, EvidenceRef, Outcome, Result, Verdict

AS_OF = "2026-06-01T12:00:00.000000Z"


def _control(ident: str, *csf: str) -> Control:
    return Control(ident, ident, csf, ident, lambda _: Verdict.not_applicable(""))


def _result(ident: str, outcome: Outcome) -> Result:
    refs = () if outcome is Outcome.NOT_APPLICABLE else (EvidenceRef("x", "1"),)
    return Result(ident, outcome, ident, refs)


def _attest(sub: str, start: str, end: str) -> Attestation:
    return Attestation(
        sub, "s", "who", dt.date.fromisoformat(start), dt.date.fromisoformat(end), (), 1
    )


def _cover(framework: str = "csf-2.0") -> Coverage:
    controls = [
        _control("a", "ID.AM-01", "ID.AM-02"),
        _control("b", "ID.AM-02"),
        _control("c", "PR.PS-04"),
        _control("d", "GV.OC-01"),
        _control("e", "DE.AE-02"),
    ]
    results = [
        _result("a", Outcome.PASS),
        _result("b", Outcome.FAIL),
        _result("c", Outcome.PASS),
        _result("d", Outcome.FAIL),
        _result("e", Outcome.NOT_APPLICABLE),
    ]
    attestations = [
        _attest("GV.OC-01", "2026-01-01", "2027-01-01"),  # but its control fails
        _attest("GV.OC-02", "2026-01-01", "2027-01-01"),
        _attest("GV.OC-03", "2025-01-01", "2026-01-01"),
        _attest("GV.OC-04", "2026-07-01", "2027-07-01"),  # made after AS_OF
        _attest("DE.AE-02", "2026-01-01", "2027-01-01"),
    ]
    return evaluate_coverage(
        load_catalogs(),
        framework,
        controls=controls,
        results=results,
        attestations=attestations,
        as_of=AS_OF,
    )


def test_csf_2_0_status_rules() -> None:
    status = {k: v.status for k, v in _cover().by_item.items()}
    assert status["ID.AM-01"] is Status.PASS
    assert status["ID.AM-02"] is Status.FAIL  # one failing control is enough
    assert status["GV.OC-01"] is Status.FAIL  # a failure outranks an attestation
    assert status["GV.OC-02"] is Status.ATTESTED
    assert status["GV.OC-03"] is Status.EXPIRED
    assert status["GV.OC-04"] is Status.MISSING  # future attestations do not count
    assert status["GV.OC-05"] is Status.MISSING
    assert status["DE.AE-02"] is Status.ATTESTED  # control had no evidence
    assert status["DE.AE-03"] is Status.NOT_COVERED
    assert status["PR.PS-04"] is Status.PASS


def test_not_applicable_controls_prove_nothing() -> None:
    coverage = evaluate_coverage(
        load_catalogs(),
        "csf-2.0",
        controls=[_control("e", "DE.AE-02")],
        results=[_result("e", Outcome.NOT_APPLICABLE)],
        attestations=[],
        as_of=AS_OF,
    )
    item = coverage.by_item["DE.AE-02"]
    assert item.status is Status.NOT_COVERED
    assert item.reason == "no evidence recorded for its controls: e"
    assert coverage.counts()["automated-pass"] == 0
    assert not coverage.failed


def test_derived_items_take_the_worst_mapped_status() -> None:
    csf11 = _cover("csf-1.1").by_item
    assert csf11["ID.AM-1"].status is Status.PASS
    assert csf11["ID.AM-2"].status is Status.FAIL
    assert csf11["PR.PT-1"].status is Status.PASS
    sp = _cover("sp800-53r5").by_item
    # AU-6 maps from DE.AE-02 (attested), DE.AE-03 (nothing) and PR.PS-04 (pass).
    assert sp["AU-6"].status is Status.NOT_COVERED
    assert sp["AU-6"].reason == "2 of 3 mapped CSF 2.0 subcategories evidenced"
    assert sp["PM-5"].status is Status.FAIL  # from ID.AM-01 (pass), ID.AM-02 (fail)
    summary = _cover("sp800-53r5").summary()
    assert summary["total"] == sum(summary["counts"].values())
    assert len(summary["functions"]) == 20
