"""End-to-end runs of ``zerodrift gate`` on a git repository the test creates."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult
from tests.support.gate import ASSETS, asset
from zerodrift.detect.findings import list_findings
from zerodrift.state import Database

Cli = Callable[..., CliResult]


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


# These tests are about the spec, git, plan and manifest rules: nothing is
# built here, so the image rules (tested against a real store in
# tests/integration/image_build/test_gate_store.py) are turned off.
IMAGE_RULES_OFF = """
  rules:
    image-in-store: off
    image-signed: off
    image-provenance: off
    image-sbom: off
    image-golden-manifest: off
    image-provenance-ancestor: off
    image-promotion: off
    image-hardening: off
"""


@pytest.fixture
def repo(project: Path) -> Path:
    """The example project, committed to a fresh git repository."""
    spec = project / "fleet.yaml"
    text = spec.read_text()
    assert "\npolicy:\n" in text
    spec.write_text(text.replace("\npolicy:\n", "\npolicy:" + IMAGE_RULES_OFF, 1))
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "fleet")
    return project


def test_unbuilt_images_are_rejected(project: Path, cli: Cli) -> None:
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "fleet")
    result = cli("gate", "--env", "dev", "--format", "json", cwd=project)
    assert result.code == 1
    failed = {
        (r["rule"], r["target"])
        for r in json.loads(result.out)["results"]
        if r["status"] == "fail"
    }
    assert failed == {("image-in-store", name) for name in ("web", "api", "db")}


def test_clean_committed_project_passes_and_is_audited(repo: Path, cli: Cli) -> None:
    result = cli("gate", "--env", "prod", cwd=repo)
    assert result.code == 0, result.err + result.out
    assert "gate passed for prod" in result.out
    log = cli("audit", "log", "--action", "gate.run", "--format", "json", cwd=repo)
    [record] = json.loads(log.out)["records"]
    assert record["subject"] == "prod"
    assert record["details"]["verdict"] == "passed"


def test_uncommitted_spec_rejects(repo: Path, cli: Cli) -> None:
    with open(repo / "fleet.yaml", "a") as handle:
        handle.write("# edited after review\n")
    (repo / "app" / "web" / "extra.html").write_text("<p>new</p>\n")
    result = cli("gate", "--format", "json", cwd=repo)
    assert result.code == 1
    report = json.loads(result.out)
    assert report["kind"] == "gate-report"
    assert report["verdict"] == "rejected"
    failed = {r["target"] for r in report["results"] if r["status"] == "fail"}
    assert failed == {"fleet.yaml", "app/web/extra.html"}
    log = cli("audit", "log", "--action", "gate.run", "--format", "json", cwd=repo)
    details = json.loads(log.out)["records"][-1]["details"]
    assert details["verdict"] == "rejected"
    assert details["findings"] == 2
    database = Database.open(f"sqlite:///{repo / '.zerodrift' / 'state.db'}")
    try:
        stored = list(list_findings(database, source="gate"))
    finally:
        database.close()
    assert {(f["kind"], f["subject"]) for f in stored} == {
        ("spec-committed", "fleet.yaml"),
        ("spec-committed", "app/web/extra.html"),
    }
    assert {f["severity"] for f in stored} == {"high"}


def test_git_ignored_file_in_a_copied_folder_rejects(repo: Path, cli: Cli) -> None:
    with (repo / ".gitignore").open("a") as ignore:
        ignore.write("app/web/local.html\n")
    git(repo, "commit", "-qam", "ignore a local page")
    assert cli("gate", cwd=repo).code == 0
    # Copied into the web image, yet in no commit: never reviewed.
    (repo / "app" / "web" / "local.html").write_text("<p>only here</p>\n")
    result = cli("gate", "--format", "json", cwd=repo)
    assert result.code == 1
    failed = [
        r["target"] for r in json.loads(result.out)["results"] if r["status"] == "fail"
    ]
    assert failed == ["app/web/local.html"]


def test_plan_and_manifests_with_sarif_output(
    repo: Path, cli: Cli, tmp_path: Path
) -> None:
    plans = repo / "infra"
    plans.mkdir()
    shutil.copy(asset("plan_update_in_place.json"), plans / "plan.json")
    shutil.copytree(ASSETS / "k8s_hardened", repo / "k8s")
    shutil.copy(asset("k8s_insecure.yaml"), repo / "k8s" / "agent.yaml")
    out = tmp_path / "gate.sarif"
    result = cli(
        "gate",
        "--env",
        "staging",
        "--plan",
        "infra/plan.json",
        "--manifests",
        "k8s",
        "--format",
        "sarif",
        "--output",
        str(out),
        cwd=repo,
    )
    assert result.code == 1, result.err
    assert "FAIL plan-immutable-update: aws_instance.web" in result.out
    assert "  --> infra/plan.json:39:1" in result.out
    sarif = json.loads(out.read_text())
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in sarif["runs"][0]["results"]
    }
    assert uris == {"infra/plan.json", "k8s/agent.yaml"}


def test_junit_output(repo: Path, cli: Cli) -> None:
    result = cli(
        "gate",
        "--manifests",
        str(ASSETS / "k8s_hardened"),
        "--format",
        "junit",
        cwd=repo,
    )
    assert result.code == 0, result.err
    assert result.out.startswith('<?xml version="1.0"')
    assert 'failures="0"' in result.out


def test_policy_in_the_committed_spec_turns_a_failure_into_a_warning(
    repo: Path,
    cli: Cli,
) -> None:
    text = (repo / "fleet.yaml").read_text()
    text = text.replace("  rules:\n", "  rules:\n    plan-immutable-update: warn\n")
    (repo / "fleet.yaml").write_text(text)
    git(repo, "commit", "-q", "-am", "warn only")
    result = cli("gate", "--plan", str(asset("plan_update_in_place.json")), cwd=repo)
    assert result.code == 0, result.out
    assert "WARN plan-immutable-update: aws_instance.web" in result.out


def test_invalid_committed_spec_is_rejected_with_location(repo: Path, cli: Cli) -> None:
    with open(repo / "fleet.yaml", "a") as handle:
        handle.write("colour: blue\n")
    git(repo, "commit", "-q", "-am", "typo")
    result = cli("gate", cwd=repo)
    assert result.code == 1
    assert "FAIL spec-valid" in result.out
    assert "unknown key 'colour'" in result.out


@pytest.mark.parametrize(
    ("args", "reference"),
    [
        (["--plan", "plan_truncated.json"], "plan-malformed"),
        (["--plan", "plan_unknown_format_version.json"], "plan-format-unsupported"),
        (["--manifests", "helm_template.yaml"], "manifest-unrendered-template"),
        (["--manifests", "invalid_yaml.yaml"], "manifest-malformed"),
        (["--env", "qa"], "unknown-environment"),
    ],
)
def test_bad_input_is_exit_3_with_position(
    repo: Path,
    cli: Cli,
    args: list[str],
    reference: str,
) -> None:
    argv = [str(ASSETS / a) if a.endswith((".json", ".yaml")) else a for a in args]
    result = cli("gate", *argv, cwd=repo)
    assert result.code == 3, result.out
    assert f"error[{reference}]" in result.err
    assert "Traceback" not in result.err


def test_exit_code_from_a_real_process(repo: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "zerodrift",
            "gate",
            "--plan",
            str(asset("plan_azure_update_in_place.json")),
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "azurerm_linux_virtual_machine.this" in done.stdout
    assert done.stderr == ""


def test_commit_signature_enforced_with_committed_allowed_signers(
    repo: Path, cli: Cli, tmp_path: Path
) -> None:
    key = tmp_path / "ci_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ci", "-f", str(key)],
        check=True,
    )
    public = (tmp_path / "ci_key.pub").read_text().strip()
    (repo / "allowed_signers").write_text(
        f'test@example.invalid namespaces="git" {public}\n'
    )
    text = (
        (repo / "fleet.yaml")
        .read_text()
        .replace(
            "  rules:\n",
            "  commits: {allowed_signers: allowed_signers}\n"
            "  rules:\n    commit-signed: enforce\n",
        )
    )
    (repo / "fleet.yaml").write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "require signed commits")
    unsigned = cli("gate", cwd=repo)
    assert unsigned.code == 1
    assert "FAIL commit-signed" in unsigned.out
    assert "commit signature is missing" in unsigned.out

    git(repo, "config", "gpg.format", "ssh")
    git(repo, "config", "user.signingkey", str(key))
    git(repo, "commit", "-q", "--allow-empty", "-S", "-m", "signed")
    signed = cli("gate", "--format", "json", cwd=repo)
    assert signed.code == 0, signed.out
    [result] = [
        r for r in json.loads(signed.out)["results"] if r["rule"] == "commit-signed"
    ]
    assert result["status"] == "pass"


def test_quiet_prints_failures_and_verdict_only(repo: Path, cli: Cli) -> None:
    plan = str(asset("plan_update_in_place.json"))
    result = cli("gate", "-q", "--plan", plan, cwd=repo)
    assert result.code == 1
    lines = result.out.splitlines()
    assert lines[0] == "FAIL plan-immutable-update: aws_instance.web"
    assert lines[-1].startswith("gate rejected:")
    assert not any(line.startswith("note:") for line in lines)
