"""SARIF 2.1.0: one result per failed control, for code-scanning dashboards.

Rules are zerodrift's controls (tagged with the CSF 2.0 subcategories and
SP 800-53 controls they evidence); results are the failures, each with its
evidence records in ``properties``. Controls that passed or had no evidence
produce no result, as a linter's clean files do.
"""

from __future__ import annotations

import json
from typing import Any

from zerodrift import __version__
from zerodrift.comply.registry import Outcome
from zerodrift.comply.report import Report

__all__ = ["SARIF_SCHEMA", "to_sarif"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def to_sarif(report: Report) -> str:
    """Render failed controls as a SARIF 2.1.0 log."""
    controls = report.control_dicts()
    rules = [_rule(c) for c in controls]
    index = {c["id"]: n for n, c in enumerate(controls)}
    results = [
        _result(
            r.control, index[r.control], r.summary, [e.to_dict() for e in r.evidence]
        )
        for r in report.coverage.results
        if r.outcome is Outcome.FAIL
    ]
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "zerodrift",
                        "version": __version__,
                        "informationUri": "https://zerodrift.dev/",
                        "rules": rules,
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": True,
                        "endTimeUtc": report.generated_at,
                    }
                ],
                "properties": {
                    "framework": report.coverage.framework.key,
                    "asOf": report.as_of,
                    "environment": report.environment,
                },
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2) + "\n"


def _rule(control: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": control["id"],
        "name": "".join(part.title() for part in control["id"].split("-")),
        "shortDescription": {"text": control["title"]},
        "fullDescription": {"text": control["description"]},
        "defaultConfiguration": {"level": "error"},
        "properties": {
            "tags": [*control["csf_2_0"], *control["sp800_53r5"]],
            "csf-2.0": control["csf_2_0"],
            "csf-1.1": control["csf_1_1"],
            "sp800-53r5": control["sp800_53r5"],
        },
    }


def _result(
    control: str, index: int, summary: str, evidence: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "ruleId": control,
        "ruleIndex": index,
        "level": "error",
        "kind": "fail",
        "message": {"text": summary},
        "properties": {"evidence": evidence},
    }
