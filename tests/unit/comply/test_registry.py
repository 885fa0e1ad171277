from __future__ import annotations

import pytest

from zerodrift.comply.evidence import Evidence
from zerodrift.comply.registry import (
    MAX_REFS,
    EvidenceRef,
    Outcome,
    Verdict,
    control,
    load_controls,
)


def test_a_pass_must_name_its_evidence() -> None:
    with pytest.raises(ValueError, match="evidence"):
        Verdict.passed("looks fine", [])
    refs = [EvidenceRef("finding", str(n)) for n in range(MAX_REFS + 10)]
    verdict = Verdict.passed("ok", refs)
    assert verdict.outcome is Outcome.PASS
    assert len(verdict.evidence) == MAX_REFS


def test_control_ids_are_unique_and_evidence_something() -> None:
    load_controls()

    def evaluate(evidence: Evidence) -> Verdict:
        return Verdict.not_applicable("never")

    with pytest.raises(ValueError, match="registered twice"):
        control("inventory-recorded", title="again", csf=("ID.AM-01",))(evaluate)
    with pytest.raises(ValueError, match="no subcategory"):
        control("nothing-evidenced", title="none", csf=())(evaluate)
