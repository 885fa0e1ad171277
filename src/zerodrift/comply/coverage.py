"""Honest coverage: a status for every item of a framework, from evidence only.

CSF 2.0 subcategories get their status directly, first rule that applies:

1. ``automated-fail``: a control evidencing it failed;
2. ``automated-pass``: a control evidencing it passed (and none failed);
3. ``attested``: a valid attestation names it (on the evaluation day);
4. ``attestation-expired``: its newest attestation has expired;
5. ``attestation-missing``: it needs a person's attestation and has none;
6. ``not-covered``: nothing evidences it (controls that found no evidence
   to judge by are listed, but they prove nothing).

CSF 1.1 subcategories and SP 800-53 controls are *derived* through NIST's
mappings: each takes the worst status among the CSF 2.0 subcategories
mapped to it, in the order fail, expired, missing, not covered, attested,
pass. So a derived item passes only when every CSF 2.0 outcome mapped to it
is evidenced; partial evidence shows as not covered, with the sources listed.
An item no CSF 2.0 subcategory maps to is not covered.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from zerodrift.comply.attestations import Attestation
from zerodrift.comply.catalogs import Catalogs, Framework, Item
from zerodrift.comply.evidence import parse_time
from zerodrift.comply.registry import Control, Outcome, Result

__all__ = ["Coverage", "ItemStatus", "Status", "evaluate_coverage"]


class Status(StrEnum):
    """How well an item is evidenced, from worst to best."""

    FAIL = "automated-fail"
    EXPIRED = "attestation-expired"
    MISSING = "attestation-missing"
    NOT_COVERED = "not-covered"
    ATTESTED = "attested"
    PASS = "automated-pass"  # noqa: S105 (a status, not a password)


STATUS_ORDER = tuple(Status)


@dataclass(frozen=True)
class ItemStatus:
    """The status of one framework item and what it rests on."""

    item: Item
    status: Status
    reason: str
    controls: tuple[str, ...] = ()
    attestation: Attestation | None = None
    sources: tuple[tuple[str, Status], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Render as a JSON-ready dict."""
        return {
            "id": self.item.id,
            "text": self.item.text,
            "function": self.item.function,
            "category": self.item.category,
            "status": self.status.value,
            "reason": self.reason,
            "controls": list(self.controls),
            "attestation": self.attestation.to_dict() if self.attestation else None,
            "sources": [{"id": s, "status": st.value} for s, st in self.sources],
        }


@dataclass(frozen=True)
class Coverage:
    """Every item of a framework with its status, and the control results."""

    framework: Framework
    items: tuple[ItemStatus, ...]
    results: tuple[Result, ...]
    controls: tuple[Control, ...]
    by_item: dict[str, ItemStatus] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        self.by_item.update((s.item.id, s) for s in self.items)

    @property
    def failed(self) -> bool:
        """Whether any item is ``automated-fail``."""
        return any(s.status is Status.FAIL for s in self.items)

    def counts(self, items: Iterable[ItemStatus] | None = None) -> dict[str, int]:
        """Count items per status (every status present, zeros included)."""
        counter = Counter(s.status for s in (self.items if items is None else items))
        return {status.value: counter.get(status, 0) for status in STATUS_ORDER}

    def summary(self) -> dict[str, Any]:
        """Overall and per-function counts."""
        functions = []
        for function in self.framework.functions:
            members = [s for s in self.items if s.item.function == function.id]
            functions.append(
                {
                    "id": function.id,
                    "name": function.name,
                    "total": len(members),
                    "counts": self.counts(members),
                }
            )
        return {
            "total": len(self.items),
            "counts": self.counts(),
            "functions": functions,
        }


def evaluate_coverage(
    catalogs: Catalogs,
    framework_key: str,
    *,
    controls: Sequence[Control],
    results: Sequence[Result],
    attestations: Sequence[Attestation],
    as_of: str,
) -> Coverage:
    """Give every item of a framework its status.

    Args:
        catalogs: The loaded reference data.
        framework_key: ``csf-2.0``, ``csf-1.1`` or ``sp800-53r5``.
        controls: The registered controls.
        results: Their results, one per control.
        attestations: The checked attestations.
        as_of: The evaluation time; attestations are judged on its day.
    """
    csf = _csf20_statuses(catalogs, controls, results, attestations, as_of)
    framework = catalogs.framework(framework_key)
    if framework_key == "csf-2.0":
        items = tuple(csf[item.id] for item in framework.items)
    else:
        sources = (
            _invert(catalogs.csf20_to_csf11)
            if framework_key == "csf-1.1"
            else _invert(catalogs.csf20_to_sp800_53)
        )
        items = tuple(
            _derived(item, sources.get(item.id, ()), csf) for item in framework.items
        )
    return Coverage(framework, items, tuple(results), tuple(controls))


def _csf20_statuses(
    catalogs: Catalogs,
    controls: Sequence[Control],
    results: Sequence[Result],
    attestations: Sequence[Attestation],
    as_of: str,
) -> dict[str, ItemStatus]:
    by_control = {r.control: r for r in results}
    day = parse_time(as_of).date()
    attested = {a.subcategory: a for a in attestations if a.state(day) != "future"}
    statuses = {}
    for item in catalogs.framework("csf-2.0").items:
        mine = [c.id for c in controls if item.id in c.csf]
        outcomes = [by_control[c] for c in mine if c in by_control]
        statuses[item.id] = _status(
            item,
            controls=mine,
            outcomes=outcomes,
            attestation=attested.get(item.id),
            day=day,
            manual=item.id in catalogs.manual,
        )
    return statuses


def _status(
    item: Item,
    *,
    controls: list[str],
    outcomes: list[Result],
    attestation: Attestation | None,
    day: dt.date,
    manual: bool,
) -> ItemStatus:
    failed = [r.control for r in outcomes if r.outcome is Outcome.FAIL]
    passed = [r.control for r in outcomes if r.outcome is Outcome.PASS]
    ids = tuple(controls)
    if failed:
        return ItemStatus(
            item, Status.FAIL, f"failed: {', '.join(failed)}", ids, attestation
        )
    if passed:
        return ItemStatus(
            item, Status.PASS, f"passed: {', '.join(passed)}", ids, attestation
        )
    if attestation is not None and attestation.state(day) == "valid":
        reason = f"attested by {attestation.by} until {attestation.expires}"
        return ItemStatus(item, Status.ATTESTED, reason, ids, attestation)
    if attestation is not None:
        reason = f"attestation by {attestation.by} expired {attestation.expires}"
        return ItemStatus(item, Status.EXPIRED, reason, ids, attestation)
    if manual:
        return ItemStatus(item, Status.MISSING, "needs a person's attestation", ids)
    reason = (
        "no evidence recorded for its controls: " + ", ".join(controls)
        if controls
        else "no automated control or attestation"
    )
    return ItemStatus(item, Status.NOT_COVERED, reason, ids)


def _derived(
    item: Item, sources: Sequence[str], csf: dict[str, ItemStatus]
) -> ItemStatus:
    known = [(s, csf[s].status) for s in sources if s in csf]
    if not known:
        return ItemStatus(item, Status.NOT_COVERED, "no CSF 2.0 subcategory maps here")
    worst = min((status for _, status in known), key=STATUS_ORDER.index)
    good = sum(1 for _, status in known if status in (Status.PASS, Status.ATTESTED))
    controls = sorted({c for s, _ in known for c in csf[s].controls})
    reason = f"{good} of {len(known)} mapped CSF 2.0 subcategories evidenced"
    return ItemStatus(item, worst, reason, tuple(controls), None, tuple(known))


def _invert(mapping: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    inverted: dict[str, list[str]] = {}
    for source, targets in mapping.items():
        for target in targets:
            inverted.setdefault(target, []).append(source)
    return {key: tuple(sorted(set(values))) for key, values in inverted.items()}
