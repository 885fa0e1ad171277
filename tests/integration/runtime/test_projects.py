"""Projects that share one podman: each touches only the nodes it created."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.integration.runtime.test_apply import ENV, _fleet, _ours
from zerodrift.runtime.backend import LABEL_STATE
from zerodrift.runtime.podman import PodmanBackend
from zerodrift.state import Database


def _another_project(project: Path, target: Path, name: str | None = None) -> Path:
    """A copy of ``project`` with a state database of its own."""
    shutil.copytree(
        project,
        target,
        ignore=shutil.ignore_patterns(
            "state.db*", "audit-witness.json", "locks", "evidence", "tmp"
        ),
    )
    if name is not None:
        spec = target / "fleet.yaml"
        text = spec.read_text()
        spec.write_text(text.replace(f"name: {_fleet(project)}", f"name: {name}", 1))
    return target


def _state_id(project: Path) -> str:
    db = Database.open(f"sqlite:///{project / '.zerodrift' / 'state.db'}")
    try:
        return db.state_id()
    finally:
        db.close()


def test_a_second_project_with_the_same_fleet_name_is_refused(
    rt_project: Path, cli: Any, backend: PodmanBackend, tmp_path: Path
) -> None:
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    nodes = _ours(backend, rt_project)
    owner = _state_id(rt_project)
    assert {backend.node(n).labels[LABEL_STATE] for n in nodes} == {owner}

    other = _another_project(rt_project, tmp_path / "other")
    for argv in (
        ["plan", "--env", ENV],
        ["apply", "--env", ENV],
        ["recover", "--env", ENV, "--drill"],
    ):
        result = cli(*argv, cwd=other)
        assert result.code == 3, (argv, result.err)
        assert "error[environment-taken]" in result.err
        assert f"label={LABEL_STATE}={owner}" in result.err
    # The first project's nodes are untouched, and still clean to it.
    assert _ours(backend, rt_project) == nodes
    assert cli("check", "--env", ENV, cwd=rt_project).code == 0
    assert cli("plan", "--env", ENV, cwd=rt_project).code == 0


def test_a_drill_destroys_only_its_own_fleet_in_a_shared_environment_name(
    rt_project: Path, cli: Any, backend: PodmanBackend, tmp_path: Path
) -> None:
    neighbour = _another_project(
        rt_project, tmp_path / "neighbour", f"{_fleet(rt_project)}n"
    )
    assert cli("apply", "--env", ENV, cwd=neighbour).code == 0
    theirs = _ours(backend, neighbour)
    assert len(theirs) == 3
    try:
        assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
        mine = _ours(backend, rt_project)
        result = cli("recover", "--env", ENV, "--drill", cwd=rt_project)
        assert result.code == 0, result.err
        assert not set(mine) & set(_ours(backend, rt_project))
        assert _ours(backend, neighbour) == theirs
    finally:
        for name in theirs:
            backend.destroy(name, timeout=0)
