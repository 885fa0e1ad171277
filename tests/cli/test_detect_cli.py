"""check, incidents, respond and evidence on a project with nothing deployed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def test_nothing_deployed_means_nothing_to_check(cli: Any, project: Path) -> None:
    result = cli("check", cwd=project)
    assert result.code == 0, result.err
    assert "Nothing to check" in result.out
    result = cli("check", "--format", "json", cwd=project)
    assert json.loads(result.out)["environments"] == []


def test_clear_errors(cli: Any, project: Path, tmp_path: Path) -> None:
    unknown = cli("check", "--env", "qa", cwd=project)
    assert unknown.code == 3
    assert "unknown environment 'qa'" in unknown.err
    assert cli("incidents", cwd=project).code == 0
    listed = json.loads(cli("incidents", "--format", "json", cwd=project).out)
    assert (listed["kind"], listed["incidents"]) == ("incidents", [])
    assert cli("incidents", "show", cwd=project).code == 2
    missing = cli("incidents", "show", "abc", cwd=project)
    assert missing.code == 3
    assert "no incident matches 'abc'" in missing.err
    node = cli("respond", "web-1", cwd=project)
    assert node.code == 3
    assert "no environment has a node named 'web-1'" in node.err
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"junk")
    bad = cli("evidence", "verify", str(junk), cwd=project)
    assert bad.code == 1
    assert "cannot read" in bad.err
    assert cli("evidence", "export", "abc", cwd=project).code == 3
