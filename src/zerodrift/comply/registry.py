"""The control registry: automated checks over recorded evidence.

A *control* is a small function that reads :class:`~zerodrift.comply.evidence.
Evidence` and returns a :class:`Verdict`: pass, fail or not applicable, with
references to the evidence records it looked at. It declares the CSF 2.0
subcategories it evidences; CSF 1.1 subcategories and SP 800-53 controls are
derived through NIST's mappings, never typed by hand.

Adding a control is adding one module to :mod:`zerodrift.comply.controls`
(every module there is imported by :func:`load_controls`)::

    from zerodrift.comply.evidence import Evidence
    from zerodrift.comply.registry import Verdict, control

    @control("images-signed", title="Every deployed image is signed",
             csf=("PR.PS-01",))
    def images_signed(evidence: Evidence) -> Verdict:
        ...
        return Verdict.failed("2 images unsigned", refs)

Rules a control follows: no evidence is ``not-applicable`` (never a pass);
every pass and fail names the records it is based on; it reads evidence only
through :class:`Evidence`, so ``--at TIME`` works for it unchanged.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zerodrift.comply.evidence import Evidence

__all__ = [
    "Control",
    "EvidenceRef",
    "Outcome",
    "Result",
    "Verdict",
    "control",
    "load_controls",
]

# Evidence lists are capped so that a report over 100,000 findings stays
# readable; the summary always gives the full counts.
MAX_REFS = 25


class Outcome(StrEnum):
    """What a control concluded."""

    PASS = "pass"  # noqa: S105 (an outcome, not a password)
    FAIL = "fail"
    NOT_APPLICABLE = "not-applicable"


@dataclass(frozen=True)
class EvidenceRef:
    """A pointer to one recorded piece of evidence.

    Attributes:
        kind: The record type: ``audit-record``, ``inventory-snapshot``,
            ``finding``, ``spec-revision``, ``spec``, ``trust-key``, ``node``,
            ``recovery``, ``reconcile-run``...
        id: Its identifier in that store (audit seq, snapshot id, finding id).
        note: What about it mattered, in a few words.
        recorded_at: When it was recorded, if it has a time.
    """

    kind: str
    id: str
    note: str | None = None
    recorded_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Render as a JSON-ready dict."""
        return {
            "kind": self.kind,
            "id": self.id,
            "note": self.note,
            "recorded_at": self.recorded_at,
        }


@dataclass(frozen=True)
class Verdict:
    """What a control's evaluator returns."""

    outcome: Outcome
    summary: str
    evidence: tuple[EvidenceRef, ...] = ()

    @classmethod
    def passed(cls, summary: str, evidence: Iterable[EvidenceRef]) -> Verdict:
        """A pass; it must name at least one evidence record.

        Raises:
            ValueError: No evidence was given (a pass without evidence is a bug).
        """
        refs = tuple(evidence)
        if not refs:
            raise ValueError("a pass must reference the evidence it rests on")
        return cls(Outcome.PASS, summary, refs[:MAX_REFS])

    @classmethod
    def failed(cls, summary: str, evidence: Iterable[EvidenceRef] = ()) -> Verdict:
        """A failure, with the records that show it."""
        return cls(Outcome.FAIL, summary, tuple(evidence)[:MAX_REFS])

    @classmethod
    def not_applicable(cls, summary: str) -> Verdict:
        """No evidence to judge by (which is never a pass)."""
        return cls(Outcome.NOT_APPLICABLE, summary)


Evaluator = Callable[["Evidence"], Verdict]


@dataclass(frozen=True)
class Control:
    """An automated control: what it checks and which outcomes it evidences."""

    id: str
    title: str
    csf: tuple[str, ...]
    description: str
    evaluate: Evaluator = field(compare=False, repr=False)

    def run(self, evidence: Evidence) -> Result:
        """Evaluate the control and label the verdict with its id."""
        verdict = self.evaluate(evidence)
        return Result(self.id, verdict.outcome, verdict.summary, verdict.evidence)


@dataclass(frozen=True)
class Result:
    """A control's verdict in a report."""

    control: str
    outcome: Outcome
    summary: str
    evidence: tuple[EvidenceRef, ...]

    def to_dict(self) -> dict[str, Any]:
        """Render as a JSON-ready dict."""
        return {
            "control": self.control,
            "outcome": self.outcome.value,
            "summary": self.summary,
            "evidence": [ref.to_dict() for ref in self.evidence],
        }


_REGISTRY: dict[str, Control] = {}


def control(
    control_id: str, *, title: str, csf: tuple[str, ...]
) -> Callable[[Evaluator], Evaluator]:
    """Register the decorated function as the evaluator of a control.

    Args:
        control_id: A stable kebab-case identifier (shown in every report).
        title: One line saying what passing means.
        csf: The CSF 2.0 subcategories this control evidences.

    Raises:
        ValueError: The identifier is taken or ``csf`` is empty.
    """

    def register(evaluator: Evaluator) -> Evaluator:
        if control_id in _REGISTRY:
            raise ValueError(f"control {control_id!r} is registered twice")
        if not csf:
            raise ValueError(f"control {control_id!r} evidences no subcategory")
        _REGISTRY[control_id] = Control(
            control_id,
            title,
            tuple(csf),
            (evaluator.__doc__ or title).strip(),
            evaluator,
        )
        return evaluator

    return register


def load_controls() -> tuple[Control, ...]:
    """Import every module of :mod:`zerodrift.comply.controls`; return the controls.

    Ordered by identifier, so reports list them in a stable order.
    """
    package = importlib.import_module("zerodrift.comply.controls")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    return tuple(_REGISTRY[key] for key in sorted(_REGISTRY))
