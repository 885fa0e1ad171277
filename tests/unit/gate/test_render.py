"""Renderers: text summary, SARIF 2.1.0 and JUnit XML of one report."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import date

import pytest

from tests.support.gate import asset
from zerodrift.gate import RULES, GateInput, GateReport, evaluate
from zerodrift.gate.kubernetes import parse_manifests
from zerodrift.gate.render import to_junit, to_sarif, to_text
from zerodrift.gate.terraform import load_plan
from zerodrift.spec import parse_spec

SPEC = b"""version: 1
name: shop
environments: {prod: {}}
policy:
  waivers:
    - rule: manifest-pods-exec
      target: ClusterRole/debugger
      reason: break-glass role, reviewed monthly
      expires: 2099-01-01
"""


@pytest.fixture(scope="module")
def report() -> GateReport:
    fleet = parse_spec(SPEC, "fleet.yaml").fleet
    plan = load_plan(asset("plan_update_in_place.json"), "infra/plan.json")
    manifests = parse_manifests(
        asset("k8s_insecure.yaml").read_bytes(), "k8s/insecure.yaml"
    )
    gate = GateInput(
        "fleet.yaml", fleet, date(2026, 12, 3), plans=[plan], manifests=manifests
    )
    return evaluate(gate)


def test_text_lists_each_failure_with_location_reason_and_fix(
    report: GateReport,
) -> None:
    text = to_text(report)
    assert "FAIL plan-immutable-update: aws_instance.web" in text
    assert "  --> infra/plan.json:39:1" in text
    assert "fix: replace it instead" in text
    assert "WAIVED manifest-pods-exec: ClusterRole/debugger" in text
    assert text.rstrip().splitlines()[-1].startswith("gate rejected:")


def test_sarif_is_2_1_0_with_rules_locations_and_suppressions(
    report: GateReport,
) -> None:
    sarif = json.loads(json.dumps(to_sarif(report)))
    assert sarif["version"] == "2.1.0"
    [run] = sarif["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(RULES)
    assert all(r["help"]["text"] for r in rules)
    assert {r["properties"]["security-severity"] for r in rules} == {
        "5.5",
        "8.0",
        "9.5",
    }
    results = run["results"]
    assert len(results) == len(report.failures()) + 1  # plus the waived one
    for result in results:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in {"error", "warning", "note"}
    plan = next(r for r in results if r["ruleId"] == "plan-immutable-update")
    location = plan["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "infra/plan.json"
    assert location["region"]["startLine"] == 39
    waived = next(r for r in results if r["ruleId"] == "manifest-pods-exec")
    assert waived["suppressions"][0]["justification"].startswith("break-glass")


def test_junit_has_one_case_per_rule_per_target(report: GateReport) -> None:
    root = ET.fromstring(to_junit(report))  # noqa: S314 - our own output
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == len(report.results)
    assert int(root.get("failures", "0")) == sum(
        1 for r in report.results if r.status == "fail"
    )
    failing = next(
        c
        for c in cases
        if c.get("name") == "aws_instance.web"
        and c.get("classname") == "zerodrift.gate.plan-immutable-update"
    )
    failure = failing.find("failure")
    assert failure is not None
    assert "infra/plan.json:39" in (failure.text or "")
    waived = next(c for c in cases if c.get("name") == "ClusterRole/debugger")
    skipped = waived.find("skipped")
    assert skipped is not None
    assert "waived" in skipped.get("message", "")


def test_json_shape(report: GateReport) -> None:
    data = report.to_dict()
    assert data["verdict"] == "rejected"
    assert sum(data["counts"].values()) == len(data["results"])
    first = data["results"][0]
    assert set(first) == {
        "rule",
        "status",
        "target",
        "message",
        "hint",
        "location",
        "csf",
        "waiver",
        "severity",
    }
