"""Render a gate report for people (text), code scanning (SARIF) and CI (JUnit).

- Text: each failure and warning with its location, reason and fix, then a
  count per rule and the verdict.
- SARIF 2.1.0: one run; the driver lists every rule with help text and its
  CSF tags; results are failures (``error``), warnings (``warning``) and
  waived failures (``note`` with an external suppression carrying the
  waiver's reason). Passes are left out to keep code-scanning views quiet.
- JUnit XML: one test suite per rule, one test case per rule per target.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import defaultdict
from typing import Any

from zerodrift import __version__
from zerodrift.detect.findings import Severity
from zerodrift.gate.results import GateReport, Result, Status
from zerodrift.gate.rules import RULES

__all__ = ["SARIF_SCHEMA", "to_junit", "to_sarif", "to_text"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
# GitHub code scanning ranks results by this CVSS-like score.
_SECURITY_SEVERITY = {
    Severity.INFO: "0.0",
    Severity.LOW: "3.0",
    Severity.MEDIUM: "5.5",
    Severity.HIGH: "8.0",
    Severity.CRITICAL: "9.5",
}
_LEVELS = {Status.FAIL: "error", Status.WARN: "warning", Status.WAIVED: "note"}


def to_text(report: GateReport, *, brief: bool = False) -> str:
    """A short summary: each failure with where, why and how to fix it.

    Args:
        report: The gate's report.
        brief: Leave out the per-rule counts and notes (``-q``).
    """
    lines: list[str] = []
    for result in report.failures():
        label = "FAIL" if result.status is Status.FAIL else "WARN"
        lines.append(f"{label} {result.rule}: {result.target}")
        if result.location is not None:
            lines.append(f"  --> {result.location}")
        lines.append(f"  {result.message}")
        if result.hint:
            lines.append(f"  fix: {result.hint}")
    waived = [r for r in report.results if r.status is Status.WAIVED]
    for result in waived:
        lines.append(f"WAIVED {result.rule}: {result.target} ({result.waiver})")
    if not brief:
        if lines:
            lines.append("")
        lines += _per_rule(report)
        lines += [f"note: {note}" for note in report.notes]
    counts = report.counts()
    summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    env = f" for {report.environment}" if report.environment else ""
    lines.append(f"gate {report.verdict}{env}: {summary or 'nothing checked'}")
    return "\n".join(lines) + "\n"


def _per_rule(report: GateReport) -> list[str]:
    tally: dict[str, dict[Status, int]] = defaultdict(lambda: defaultdict(int))
    for result in report.results:
        tally[result.rule][result.status] += 1
    width = max((len(rule) for rule in tally), default=0)
    lines = []
    for rule_id in RULES:
        if rule_id not in tally:
            continue
        counts = tally[rule_id]
        parts = [f"{counts[s]} {s}" for s in Status if counts[s]]
        lines.append(f"  {rule_id:<{width}}  {', '.join(parts)}")
    return lines


def to_sarif(report: GateReport) -> dict[str, Any]:
    """The report as a SARIF 2.1.0 log."""
    index = {rule_id: i for i, rule_id in enumerate(RULES)}
    rules = [
        {
            "id": rule.id,
            "name": "".join(part.title() for part in rule.id.split("-")),
            "shortDescription": {"text": rule.title},
            "fullDescription": {"text": rule.title},
            "help": {
                "text": f"{rule.help} See docs/gate.md#{rule.id}.",
                "markdown": f"{rule.help}\n\nSee `docs/gate.md#{rule.id}`.",
            },
            "defaultConfiguration": {
                "level": "error" if rule.default == "enforce" else "warning",
                "enabled": rule.default != "off",
            },
            "properties": {
                "tags": ["security", *rule.csf],
                "security-severity": _SECURITY_SEVERITY[rule.severity],
            },
        }
        for rule in RULES.values()
    ]
    results = [
        _sarif_result(r, index[r.rule]) for r in report.results if r.status in _LEVELS
    ]
    run = {
        "tool": {
            "driver": {
                "name": "zerodrift",
                "version": __version__,
                "rules": rules,
            }
        },
        "automationDetails": {"id": f"zerodrift-gate/{report.environment or 'all'}/"},
        "invocations": [
            {
                "executionSuccessful": True,
                "toolExecutionNotifications": [
                    {"level": "note", "message": {"text": note}}
                    for note in report.notes
                ],
            }
        ],
        "results": results,
        "properties": {"verdict": report.verdict, "counts": report.counts()},
    }
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def _sarif_result(result: Result, rule_index: int) -> dict[str, Any]:
    text = result.message
    if result.hint:
        text += f" Fix: {result.hint}"
    entry: dict[str, Any] = {
        "ruleId": result.rule,
        "ruleIndex": rule_index,
        "level": _LEVELS[result.status],
        "message": {"text": text},
        "partialFingerprints": {"target": f"{result.rule}:{result.target}"},
        "properties": {"target": result.target, "tags": list(result.csf)},
    }
    loc = result.location
    if loc is not None and loc.path:
        physical: dict[str, Any] = {
            "artifactLocation": {"uri": loc.path, "uriBaseId": "%SRCROOT%"}
        }
        if loc.line:
            physical["region"] = {"startLine": loc.line, "startColumn": loc.column or 1}
        entry["locations"] = [{"physicalLocation": physical}]
    if result.status is Status.WAIVED:
        entry["suppressions"] = [
            {"kind": "external", "justification": result.waiver or "waived"}
        ]
    return entry


def to_junit(report: GateReport) -> str:
    """The report as JUnit XML: a suite per rule, a case per rule per target."""
    by_rule: dict[str, list[Result]] = defaultdict(list)
    for result in report.results:
        by_rule[result.rule].append(result)
    root = ET.Element("testsuites", name="zerodrift gate")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for rule_id, results in by_rule.items():
        suite = ET.SubElement(root, "testsuite", name=rule_id)
        failures = skipped = 0
        for result in results:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"zerodrift.gate.{rule_id}",
                name=result.target,
            )
            detail = _junit_detail(result)
            if result.status is Status.FAIL:
                failures += 1
                node = ET.SubElement(
                    case, "failure", message=result.message, type=rule_id
                )
                node.text = detail
            elif result.status in (Status.SKIP, Status.WAIVED):
                skipped += 1
                reason = f"waived: {result.waiver}" if result.waiver else result.message
                ET.SubElement(case, "skipped", message=reason)
            elif result.status is Status.WARN:
                ET.SubElement(case, "system-out").text = f"warning: {detail}"
        suite.set("tests", str(len(results)))
        suite.set("failures", str(failures))
        suite.set("skipped", str(skipped))
        totals["tests"] += len(results)
        totals["failures"] += failures
        totals["skipped"] += skipped
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"
    )


def _junit_detail(result: Result) -> str:
    parts = [result.message]
    if result.location is not None:
        parts.append(f"at {result.location}")
    if result.hint:
        parts.append(f"fix: {result.hint}")
    return "\n".join(parts)


def to_json_text(document: dict[str, Any]) -> str:
    """Serialise a document with stable formatting."""
    return json.dumps(document, indent=2) + "\n"
