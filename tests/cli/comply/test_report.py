"""``zerodrift report`` end to end: every framework and format, history, errors."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CliResult
from zerodrift.protect.dsse import verify_envelope
from zerodrift.protect.keys import load_public_key

Cli = Callable[..., CliResult]

ATTESTATIONS = """\
version: 1
attestations:
  - subcategory: GV.OC-01
    statement: The board reviews the mission yearly.
    by: Jane Doe
    date: 2026-01-15
    expires: 2099-01-15
  - subcategory: GV.PO-01
    statement: The security policy is approved yearly.
    by: CISO
    date: 2020-01-01
    expires: 2021-01-01
"""


def _commit(root: Path) -> None:
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "fleet"]):
        subprocess.run(["git", "-C", str(root), *argv], check=True)


@pytest.fixture
def evidenced(project: Path, cli: Cli) -> Path:
    """The example project, committed, with attestations and an inventory."""
    (project / "compliance").mkdir()
    (project / "compliance" / "attestations.yaml").write_text(ATTESTATIONS)
    _commit(project)
    result = cli("inventory", "--format", "json", cwd=project)
    assert result.code == 0, result.err
    return project


def _json(cli: Cli, project: Path, *argv: str) -> tuple[int, dict[str, Any]]:
    result = cli("report", "--format", "json", *argv, cwd=project)
    assert result.out, result.err
    return result.code, json.loads(result.out)


def test_csf_2_0_report_of_the_example(evidenced: Path, cli: Cli) -> None:
    code, report = _json(cli, evidenced)
    assert code == 0
    assert report["kind"] == "compliance-report"
    assert report["summary"]["total"] == 106
    statuses = {i["id"]: i["status"] for i in report["items"]}
    assert statuses["ID.AM-01"] == "automated-pass"
    assert statuses["ID.AM-03"] == "automated-pass"
    assert statuses["PR.PS-01"] == "automated-pass"
    assert statuses["PR.PS-04"] == "automated-pass"
    assert statuses["GV.SC-05"] == "automated-pass"
    assert statuses["GV.OC-01"] == "attested"
    assert statuses["GV.PO-01"] == "attestation-expired"
    assert statuses["GV.OC-02"] == "attestation-missing"
    assert statuses["DE.AE-02"] == "not-covered"  # no findings: no evidence
    assert statuses["RC.RP-01"] == "not-covered"
    counts = report["summary"]["counts"]
    assert counts["automated-pass"] == 6
    assert sum(counts.values()) == 106
    per_function = {f["id"]: f["total"] for f in report["summary"]["functions"]}
    assert per_function == {"GV": 31, "ID": 21, "PR": 22, "DE": 11, "RS": 13, "RC": 8}
    control = next(c for c in report["controls"] if c["id"] == "inventory-recorded")
    assert control["csf_1_1"] == ["ID.AM-1", "ID.AM-2"]
    assert "CM-8" in control["sp800_53r5"]
    assert control["result"]["evidence"][0]["kind"] == "inventory-snapshot"


def test_derived_frameworks(evidenced: Path, cli: Cli) -> None:
    _, old = _json(cli, evidenced, "--framework", "csf-1.1")
    assert old["summary"]["total"] == 108
    statuses = {i["id"]: i for i in old["items"]}
    assert statuses["ID.AM-1"]["status"] == "automated-pass"
    assert statuses["ID.AM-1"]["sources"] == [
        {"id": "ID.AM-01", "status": "automated-pass"}
    ]
    assert statuses["PR.PT-1"]["status"] == "automated-pass"  # from PR.PS-04

    _, sp = _json(cli, evidenced, "--framework", "sp800-53r5")
    assert len(sp["functions"]) == 20
    items = {i["id"]: i for i in sp["items"]}
    # CM-8 maps from ID.AM-01, ID.AM-02 and PR.PS-01, all passing.
    assert items["CM-8"]["status"] == "automated-pass"
    # AC-4 maps from ID.AM-03 (passing) and outcomes nothing evidences:
    # partial evidence is not a pass.
    ac4 = items["AC-4"]
    assert {"id": "ID.AM-03", "status": "automated-pass"} in ac4["sources"]
    assert ac4["status"] == "not-covered"
    assert items["AC-1"]["status"] == "attestation-expired"  # GV.PO-01 expired
    assert {i["status"] for i in sp["items"]} <= {
        "automated-fail",
        "attestation-expired",
        "attestation-missing",
        "not-covered",
        "attested",
        "automated-pass",
    }


def test_table_lists_failing_first_and_exit_code_says_failed(
    project: Path,
    cli: Cli,
) -> None:
    # No inventory recorded yet: the inventory control fails.
    result = cli("report", cwd=project)
    assert result.code == 1
    lines = result.out.splitlines()
    first_function = next(line for line in lines if line.startswith("│ "))
    assert first_function.startswith("│ ID Identify")
    assert "ID.AM-01 │ automated-fail" in result.out
    assert "report run" in result.err


def test_every_document_format(evidenced: Path, cli: Cli, tmp_path: Path) -> None:
    for fmt in ("csv", "html", "oscal", "oscal-components", "sarif"):
        out = tmp_path / f"report.{fmt}"
        result = cli("report", "--format", fmt, "--output", str(out), cwd=evidenced)
        assert result.code == 0, result.err
        assert out.stat().st_size > 1000
    rows = list(csv.DictReader(io.StringIO((tmp_path / "report.csv").read_text())))
    assert len(rows) == 106
    row = next(r for r in rows if r["id"] == "ID.AM-01")
    assert row["status"] == "automated-pass"
    assert row["evidence"].startswith("inventory-snapshot:")
    page = (tmp_path / "report.html").read_text()
    assert "<script src" not in page
    assert "<link" not in page
    assert 'id="report-data"' in page


def test_oscal_documents_validate_with_trestle(evidenced: Path, cli: Cli) -> None:
    from trestle.oscal.assessment_results import AssessmentResults
    from trestle.oscal.component import ComponentDefinition

    result = cli(
        "report", "--format", "oscal", "--framework", "sp800-53r5", cwd=evidenced
    )
    document = json.loads(result.out)["assessment-results"]
    model = AssessmentResults.model_validate(document)
    assert len(model.results[0].findings or []) == 1012 - 942
    assert document["metadata"]["oscal-version"] == "1.1.2"
    assert document["results"][0]["remarks"].startswith("942 items are not covered")
    states = {
        f["target"]["target-id"]: f["target"]["status"]["state"]
        for f in document["results"][0]["findings"]
    }
    assert states["cm-8"] == "satisfied"

    result = cli("report", "--format", "oscal", cwd=evidenced)
    document = json.loads(result.out)["assessment-results"]
    AssessmentResults.model_validate(document)
    states = {
        f["target"]["target-id"]: f["target"]["status"]["state"]
        for f in document["results"][0]["findings"]
    }
    assert states["ID.AM-01"] == "satisfied"
    assert states["GV.OC-01"] == "satisfied"
    assert states["GV.PO-01"] == "not-satisfied"
    assert "RC.RP-01" not in states  # not covered: no finding at all

    result = cli("report", "--format", "oscal-components", cwd=evidenced)
    document = json.loads(result.out)["component-definition"]
    ComponentDefinition.model_validate(document)
    implemented = {
        r["control-id"]
        for impl in document["components"][0]["control-implementations"]
        for r in impl["implemented-requirements"]
    }
    assert {"ID.AM-01", "PR.PS-04", "cm-8"} <= implemented


def test_sarif_lists_failed_controls(project: Path, cli: Cli) -> None:
    # A spec not in git, and a policy no inventory can meet: both fail.
    with (project / "fleet.yaml").open("a") as spec:
        spec.write("compliance:\n  inventory_max_age: 0s\n")
    assert cli("inventory", "--format", "json", cwd=project).code == 0
    result = cli("report", "--format", "sarif", cwd=project)
    assert result.code == 1
    log = json.loads(result.out)
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert run["tool"]["driver"]["name"] == "zerodrift"
    failed = sorted(r["ruleId"] for r in run["results"])
    assert failed == ["inventory-recorded", "spec-committed"]
    for item in run["results"]:
        assert rules[item["ruleIndex"]]["id"] == item["ruleId"]
        assert item["level"] in {"none", "note", "warning", "error"}
        assert item["message"]["text"]
    assert all(r["shortDescription"]["text"] for r in rules)


def test_signed_report_verifies_with_the_project_key(evidenced: Path, cli: Cli) -> None:
    result = cli("report", "--format", "json", "--sign", cwd=evidenced)
    assert result.code == 0, result.err
    key = load_public_key("project", evidenced / "keys" / "project.pub")
    payload = verify_envelope(
        json.loads(result.out),
        [key],
        payload_type="application/vnd.zerodrift.compliance-report.v1+json",
    )
    assert json.loads(payload)["summary"]["total"] == 106


def test_runs_are_audited_and_diffed(evidenced: Path, cli: Cli) -> None:
    _, first = _json(cli, evidenced)
    (evidenced / "compliance" / "attestations.yaml").write_text(
        ATTESTATIONS.replace("GV.PO-01", "GV.PO-02")
    )
    _, second = _json(cli, evidenced)
    result = cli(
        "report",
        "--diff",
        first["run"][:8],
        second["run"],
        "--format",
        "json",
        cwd=evidenced,
    )
    assert result.code == 0, result.err
    diff = json.loads(result.out)
    assert {(i["id"], i["from"], i["to"]) for i in diff["items"]} == {
        ("GV.PO-01", "attestation-expired", "attestation-missing"),
        ("GV.PO-02", "attestation-missing", "attestation-expired"),
    }
    assert diff["controls"] == []
    table = cli("report", "--diff", first["run"], second["run"], cwd=evidenced)
    assert "GV.PO-02" in table.out

    runs = json.loads(cli("report", "--runs", "--format", "json", cwd=evidenced).out)
    assert [r["id"] for r in runs["runs"][:2]] == [second["run"], first["run"]]

    audit = cli("audit", "log", "--action", "report", "--format", "json", cwd=evidenced)
    records = json.loads(audit.out)["records"]
    assert {r["details"]["run"] for r in records} >= {first["run"], second["run"]}
    assert {r["action"] for r in records} == {"report.generated"}


def test_report_as_of_a_past_time(evidenced: Path, cli: Cli) -> None:
    _, now = _json(cli, evidenced)
    _, past = _json(cli, evidenced, "--at", "2026-01-01")
    assert past["as_of"] == "2026-01-01T00:00:00.000000Z"
    assert past["historical"] is True
    statuses = {i["id"]: i["status"] for i in past["items"]}
    assert statuses["ID.AM-01"] == "automated-fail"  # no snapshot back then
    assert statuses["PR.PS-04"] == "not-covered"  # no audit records back then
    assert statuses["GV.OC-01"] == "attestation-missing"  # attested 2026-01-15
    result = cli("report", "--diff", now["run"], past["run"], cwd=evidenced)
    assert "ID.AM-01" in result.out


def test_empty_database_is_honest(
    project: Path, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A brand-new state: no database, no witness of an earlier audit trail.
    (project / ".zerodrift" / "audit-witness.json").unlink()
    monkeypatch.setenv("ZERODRIFT_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    code, report = _json(cli, project)
    outcomes = {c["id"]: c["result"]["outcome"] for c in report["controls"]}
    assert outcomes == {
        "audit-trail-verified": "not-applicable",
        "data-flows-declared": "not-applicable",
        "data-flows-enforced": "not-applicable",
        "evidence-chain-of-custody": "not-applicable",
        "findings-analysed-in-time": "not-applicable",
        "gate-passed-before-deploy": "not-applicable",
        "hardening-resolved": "not-applicable",
        "images-signed-attested": "not-applicable",
        "integrity-monitoring-recent": "not-applicable",
        "incidents-responded-in-time": "not-applicable",
        "inventory-recorded": "fail",  # the one thing an empty state proves
        "no-baked-secrets": "not-applicable",
        "no-unmanaged-nodes": "not-applicable",
        "nodes-least-privilege": "not-applicable",
        "nodes-within-max-age": "not-applicable",
        "recovery-drill-recent": "not-applicable",
        "spec-committed": "not-applicable",
        "trust-keys-per-environment": "pass",  # read from the spec itself
    }
    assert code == 1


def test_emptied_database_with_a_witness_is_tampering(
    project: Path,
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The witness file says the trail had records; an empty database cut them.
    monkeypatch.setenv("ZERODRIFT_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    code, report = _json(cli, project)
    result = next(c for c in report["controls"] if c["id"] == "audit-trail-verified")
    assert result["result"]["outcome"] == "fail"
    assert "deleted" in result["result"]["summary"]
    assert code == 1


def test_report_on_each_database(
    evidenced: Path,
    cli: Cli,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A fresh state elsewhere: the old witness belongs to the old database.
    (evidenced / ".zerodrift" / "audit-witness.json").unlink()
    monkeypatch.setenv("ZERODRIFT_DATABASE_URL", database_url)
    assert cli("inventory", "--format", "json", cwd=evidenced).code == 0
    code, report = _json(cli, evidenced)
    assert code == 0
    statuses = {i["id"]: i["status"] for i in report["items"]}
    assert statuses["ID.AM-01"] == "automated-pass"


@pytest.mark.parametrize(
    ("argv", "reference"),
    [
        (["--at", "yesterday"], "report-time-invalid"),
        (["--at", "2999-01-01"], "report-time-invalid"),
        (["--env", "nowhere"], "environment-unknown"),
        (["--output", "x.txt"], "report-format-unsuitable"),
        (["--diff", "abc", "def"], "report-run-unknown"),
    ],
)
def test_bad_arguments(
    project: Path, cli: Cli, argv: list[str], reference: str
) -> None:
    result = cli("report", *argv, cwd=project)
    assert result.code == 3
    assert f"error[{reference}]" in result.err
    assert "Traceback" not in result.err


def test_bad_attestations_name_file_and_line(project: Path, cli: Cli) -> None:
    (project / "compliance").mkdir()
    (project / "compliance" / "attestations.yaml").write_text(
        ATTESTATIONS.replace("GV.OC-01", "GV.XX-01").replace("2020-01-01", "2020-02-30")
    )
    result = cli("report", "--format", "json", cwd=project)
    assert result.code == 3
    assert "attestations.yaml:3" in result.err
    assert "unknown CSF 2.0 subcategory 'GV.XX-01'" in result.err
    assert "attestations.yaml:11" in result.err
    assert result.out == ""


def test_failed_write_stores_no_run(project: Path, cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "missing-folder" / "report.json"
    result = cli("report", "--format", "json", "--output", str(target), cwd=project)
    assert result.code == 4
    assert "error[write-failed]" in result.err
    runs = json.loads(cli("report", "--runs", "--format", "json", cwd=project).out)
    assert runs["runs"] == []


def test_corrupt_catalog_stops_the_report(
    project: Path, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from zerodrift.comply import catalogs

    data = tmp_path / "data"
    shutil.copytree(catalogs.DATA_DIR, data)
    path = data / "csf-2.0-to-sp800-53r5.json"
    path.write_bytes(path.read_bytes().replace(b"CM-08", b"CM-09", 1))
    monkeypatch.setattr(catalogs, "DATA_DIR", data)
    result = cli("report", "--format", "json", cwd=project)
    assert result.code == 1
    assert "error[catalog-corrupt]" in result.err
    assert "csf-2.0-to-sp800-53r5.json" in result.err
    assert "Traceback" not in result.err
    assert result.out == ""
