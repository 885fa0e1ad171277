"""What a gate run produces: one result per rule per target, and a verdict.

Results are plain frozen data so every renderer (table, JSON, SARIF, JUnit)
and any future caller (an admission webhook) reads the same thing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from zerodrift.detect.findings import Finding, Severity
from zerodrift.errors import Location

__all__ = ["Check", "GateReport", "Result", "Status", "to_findings"]


class Status(StrEnum):
    """How one rule ended for one target."""

    PASS = "pass"  # noqa: S105 - a status name, not a password
    """The target satisfies the rule."""
    FAIL = "fail"
    """The target breaks an enforced rule: the change is rejected."""
    WARN = "warn"
    """The target breaks a rule set to ``warn``: reported, not rejected."""
    WAIVED = "waived"
    """The target breaks the rule but a valid waiver accepts it."""
    SKIP = "skip"
    """The rule could not be evaluated (no input for it); never a pass."""


@dataclass(frozen=True)
class Check:
    """A raw outcome from a rule, before policy (modes, waivers) applies.

    Attributes:
        rule: Rule identifier (``plan-immutable-update``...).
        target: What was checked, in the form waivers match on.
        ok: Whether the target satisfies the rule; ``None`` means skipped.
        message: One sentence: what is wrong, or what was verified.
        location: Where the target is written, when known.
        hint: How to fix a failure.
        waived_by: Reason of a waiver the rule itself found (hardening
            waivers live in the image recipe).
    """

    rule: str
    target: str
    ok: bool | None
    message: str
    location: Location | None = None
    hint: str | None = None
    waived_by: str | None = None


@dataclass(frozen=True)
class Result:
    """A rule's outcome for one target after the policy applied.

    Attributes:
        rule: Rule identifier.
        status: The outcome.
        target: What was checked.
        message: What is wrong or what was verified.
        hint: How to fix a failure.
        location: File, line and column of the target, when known.
        csf: CSF 2.0 subcategories the rule supports.
        waiver: The reason of the waiver that accepted a failure.
        severity: How bad a failure of the rule is.
    """

    rule: str
    status: Status
    target: str
    message: str
    hint: str | None = None
    location: Location | None = None
    csf: tuple[str, ...] = ()
    waiver: str | None = None
    severity: Severity = Severity.HIGH

    def to_dict(self) -> dict[str, Any]:
        """Render for JSON output."""
        loc = self.location
        return {
            "rule": self.rule,
            "status": str(self.status),
            "target": self.target,
            "message": self.message,
            "hint": self.hint,
            "location": None
            if loc is None
            else {"path": loc.path, "line": loc.line, "column": loc.column},
            "csf": list(self.csf),
            "waiver": self.waiver,
            "severity": self.severity.label,
        }


@dataclass(frozen=True)
class GateReport:
    """Every result of one gate run and the verdict they add up to.

    Attributes:
        environment: The environment gated, or ``None`` for all.
        results: One entry per rule per target, in evaluation order.
        notes: Things a reader must know (rules skipped for lack of input).
        images: The manifest digest judged for each image (``None``: not in
            the store); empty when the image rules did not run.
    """

    environment: str | None
    results: tuple[Result, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)
    images: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def rejected(self) -> bool:
        """True when any enforced rule failed."""
        return any(r.status is Status.FAIL for r in self.results)

    @property
    def verdict(self) -> str:
        """``rejected`` or ``passed``."""
        return "rejected" if self.rejected else "passed"

    def counts(self) -> dict[str, int]:
        """Number of results per status (every status present, zero or more)."""
        counted = Counter(r.status for r in self.results)
        return {str(status): counted.get(status, 0) for status in Status}

    def failures(self) -> list[Result]:
        """Failures and warnings, the results a person must read."""
        return [r for r in self.results if r.status in (Status.FAIL, Status.WARN)]

    def to_dict(self) -> dict[str, Any]:
        """Render for JSON output."""
        return {
            "verdict": self.verdict,
            "environment": self.environment,
            "counts": self.counts(),
            "notes": list(self.notes),
            "images": dict(self.images),
            "results": [r.to_dict() for r in self.results],
        }


def to_findings(report: GateReport, found_at: str) -> list[Finding]:
    """Failures and warnings as shared findings (source ``gate``).

    Args:
        report: The gate's report.
        found_at: Database-format UTC time of the run.
    """
    return [
        Finding(
            source="gate",
            kind=result.rule,
            severity=result.severity,
            subject=result.target,
            summary=result.message,
            found_at=found_at,
            details={
                "status": str(result.status),
                "hint": result.hint,
                "location": None if result.location is None else str(result.location),
            },
            csf=result.csf,
            environment=report.environment,
        )
        for result in report.failures()
    ]


# Rules that judge the files given to a run (plans, manifests) report every
# target they look at; the others judge the whole project and report a pass
# on one summary target.
_INPUT_RULE_PREFIXES = ("plan-", "manifest-")


def judged_again(report: GateReport) -> Callable[[str, str], bool]:
    """Whether this run judged again what an earlier finding was about.

    An earlier finding of a project-wide rule is judged again by any run in
    which that rule was evaluated; one of a rule over given files only when
    this run evaluated the same target (a run over another plan says nothing
    about it).

    Returns:
        A predicate over a finding's kind (the rule) and subject (the target).
    """
    evaluated = {r.rule for r in report.results if r.status is not Status.SKIP}
    targets = {
        (r.rule, r.target) for r in report.results if r.status is not Status.SKIP
    }

    def covers(rule: str, target: str) -> bool:
        if rule.startswith(_INPUT_RULE_PREFIXES):
            return (rule, target) in targets
        return rule in evaluated

    return covers
