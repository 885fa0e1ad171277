"""Protect: images pass their hardening checks and carry no baked-in secret."""

from __future__ import annotations

from datetime import date
from typing import Any

from zerodrift.comply.controls.images import build_ref
from zerodrift.comply.evidence import Evidence, parse_time
from zerodrift.comply.registry import EvidenceRef, Verdict, control
from zerodrift.errors import ConfigError
from zerodrift.protect.evidence import StoreEvidence
from zerodrift.protect.provenance import HARDENING
from zerodrift.spec.models import Waiver

__all__ = ["hardening_resolved", "no_baked_secrets"]

# Hardening checks that find secrets (see zerodrift.protect.hardening).
SECRET_CHECKS = frozenset({"secret-file", "private-key"})

_UNKNOWN_SPEC = Verdict.not_applicable("the spec in force at that time is not known")

Reports = list[tuple[str, EvidenceRef, list[dict[str, Any]]]]


@control(
    "hardening-resolved",
    title="Every image's high hardening findings are fixed or waived, in time",
    csf=("PR.PS-01",),
)
def hardening_resolved(evidence: Evidence) -> Verdict:
    """Hardening findings are resolved, or waived with a waiver still valid.

    For each image of the spec in force, the newest build's digest has a
    hardening report signed by a trusted key. No high-severity finding in it
    is unwaived, and each waiver it relies on has not expired by ``as_of``
    (waivers are read from the spec in force). Lower severities are counted,
    not failed: the build policy lets them through.
    """
    spec = evidence.spec_in_force
    reports = _signed_reports(evidence)
    if spec is None or isinstance(reports, Verdict):
        return reports if isinstance(reports, Verdict) else _UNKNOWN_SPEC
    today = parse_time(evidence.as_of).date()
    problems: list[str] = []
    lower = 0
    for name, _ref, findings in reports:
        waivers = spec.fleet.images[name].hardening.waivers
        for item in findings:
            problem = _open_problem(item, waivers, today)
            if problem:
                problems.append(f"{name}: {problem}")
            elif item.get("severity") != "high" and not item.get("waived"):
                lower += 1
    refs = [ref for _name, ref, _findings in reports]
    if problems:
        return Verdict.failed("; ".join(problems), refs)
    return Verdict.passed(
        f"{len(reports)} images: no open high finding, waivers valid "
        f"({lower} medium/low findings noted)",
        refs,
    )


@control(
    "no-baked-secrets",
    title="No image carries a secret file or private key",
    csf=("PR.DS-01",),
)
def no_baked_secrets(evidence: Evidence) -> Verdict:
    """Secrets are injected at run time, never baked into images.

    For each image of the spec in force, the newest build's signed
    hardening report exists and has no ``secret-file`` or ``private-key``
    finding, waived or not: a waiver does not make a baked secret secret.
    """
    reports = _signed_reports(evidence)
    if isinstance(reports, Verdict):
        return reports
    problems = [
        f"{name}: {item.get('check')} at {item.get('path')}"
        + (" (waived)" if item.get("waived") else "")
        for name, _ref, findings in reports
        for item in findings
        if item.get("check") in SECRET_CHECKS
    ]
    refs = [ref for _name, ref, _findings in reports]
    if problems:
        return Verdict.failed("; ".join(problems), refs)
    return Verdict.passed(
        f"{len(reports)} images scanned for secrets at build time: none found", refs
    )


def _signed_reports(evidence: Evidence) -> Reports | Verdict:
    """The signed hardening findings of each image's newest build, or a verdict."""
    spec = evidence.spec_in_force
    if spec is None:
        return _UNKNOWN_SPEC
    if not spec.fleet.images:
        return Verdict.not_applicable("the spec declares no image")
    if not evidence.builds:
        return Verdict.not_applicable("no image build recorded")
    try:
        store = evidence.image_store
    except ConfigError as exc:
        return Verdict.failed(f"trusted keys cannot be loaded: {exc.message}")
    reports: Reports = []
    missing: list[str] = []
    for name in sorted(spec.fleet.images):
        build = evidence.builds.get(name)
        report = _report(store, build.subject.partition("@")[2]) if build else None
        if build is None or report is None:
            missing.append(name)
            continue
        reports.append((name, build_ref(build, "signed hardening report"), report))
    if missing:
        return Verdict.failed(
            f"no signed hardening report for the newest build of {', '.join(missing)}",
            [ref for _name, ref, _findings in reports],
        )
    return reports


def _report(store: StoreEvidence | None, digest: str) -> list[dict[str, Any]] | None:
    statement = store.statement(digest, HARDENING) if store else None
    if statement is None:
        return None
    return list(statement["predicate"].get("findings", []))


def _open_problem(
    item: dict[str, Any], waivers: list[Waiver], today: date
) -> str | None:
    where = f" at {item['path']}" if item.get("path") else ""
    if item.get("check") == "waiver-expired":
        return f"{item.get('message')}"
    if not item.get("waived"):
        return (
            f"{item.get('check')}{where} is open"
            if item.get("severity") == "high"
            else None
        )
    waiver = next(
        (
            w
            for w in waivers
            if w.check == item.get("check") and w.path in (None, item.get("path"))
        ),
        None,
    )
    if waiver is None:
        return f"{item.get('check')}{where} was waived, but the waiver is gone"
    if waiver.expires < today:
        return f"{item.get('check')}{where}: waiver expired {waiver.expires}"
    return None
