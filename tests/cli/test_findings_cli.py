"""``zerodrift findings`` and how the gate resolves its own findings."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.test_gate import IMAGE_RULES_OFF, git
from tests.conftest import CliResult

Cli = Callable[..., CliResult]


@pytest.fixture
def repo(project: Path) -> Path:
    """The example project without image rules, committed to git."""
    spec = project / "fleet.yaml"
    spec.write_text(
        spec.read_text().replace("\npolicy:\n", "\npolicy:" + IMAGE_RULES_OFF, 1)
    )
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "fleet")
    return project


def listed(cli: Cli, repo: Path, *args: str) -> list[dict[str, object]]:
    result = cli("findings", "list", "--format", "json", *args, cwd=repo)
    assert result.code == 0, result.err
    rows: list[dict[str, object]] = json.loads(result.out)["findings"]
    return rows


def test_gate_findings_persist_once_and_resolve_when_the_gate_passes(
    repo: Path, cli: Cli
) -> None:
    extra = repo / "app" / "web" / "extra.html"
    extra.write_text("<p>not reviewed</p>\n")
    assert cli("gate", cwd=repo).code == 1
    assert cli("gate", cwd=repo).code == 1
    [row] = listed(cli, repo, "--source", "gate")
    assert (row["subject"], row["times_seen"]) == ("app/web/extra.html", 2)

    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "reviewed")
    assert cli("gate", cwd=repo).code == 0
    assert listed(cli, repo) == []
    [done] = listed(cli, repo, "--status", "resolved")
    assert done["id"] == row["id"]
    assert done["resolution"] == "passed a later gate run"
    log = cli("audit", "log", "--action", "gate.run", "--format", "json", cwd=repo)
    assert json.loads(log.out)["records"][-1]["details"]["resolved_findings"] == [
        row["id"]
    ]


def test_resolve_by_hand_needs_a_reason_and_is_audited(repo: Path, cli: Cli) -> None:
    (repo / "app" / "web" / "extra.html").write_text("<p>x</p>\n")
    assert cli("gate", cwd=repo).code == 1
    [row] = listed(cli, repo)
    short = str(row["id"])[:8]

    shown = cli("findings", "show", short, cwd=repo)
    assert shown.code == 0
    assert "app/web/extra.html" in shown.out
    assert "spec-committed" in shown.out

    no_reason = cli("findings", "resolve", short, cwd=repo)
    assert no_reason.code == 3
    assert "--reason" in no_reason.err
    unknown = cli("findings", "resolve", "0000000", "--reason", "x", cwd=repo)
    assert unknown.code == 3
    assert "no finding has the id '0000000'" in unknown.err

    done = cli(
        "findings",
        "resolve",
        short,
        "--reason",
        "a demo file",
        "--format",
        "json",
        cwd=repo,
    )
    assert done.code == 0, done.err
    assert json.loads(done.out)["resolved"] == [row["id"]]
    again = cli("findings", "resolve", short, "--reason", "again", cwd=repo)
    assert again.code == 0
    assert "already resolved" in again.err
    [stored] = listed(cli, repo, "--status", "resolved")
    assert str(stored["resolution"]).startswith("a demo file (resolved by ")
    log = cli(
        "audit", "log", "--action", "finding.resolved", "--format", "json", cwd=repo
    )
    [record] = json.loads(log.out)["records"]
    assert record["details"] == {
        "finding": row["id"],
        "kind": "spec-committed",
        "reason": "a demo file",
    }


def test_show_needs_exactly_one_id(repo: Path, cli: Cli) -> None:
    result = cli("findings", "show", cwd=repo)
    assert result.code == 3
    assert "needs one finding id" in result.err
