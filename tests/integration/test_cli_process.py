"""The command as a separate process: entry point, pipes, read-only state, offline."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from tests.support.process import (
    ZERODRIFT,
    can_unshare,
    run,
    run_offline,
    run_with_read_only,
)
from zerodrift import __version__
from zerodrift._cli.status import ExitCode
from zerodrift.govern.audit import AuditTrail
from zerodrift.state import Database

needs_namespaces = pytest.mark.skipif(
    not can_unshare(), reason="needs root and unshare for namespaces"
)


def fingerprint(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_python_dash_m_version() -> None:
    result = run("--version")
    assert (result.returncode, result.stdout) == (0, f"zerodrift {__version__}\n")


def test_errors_go_to_stderr_and_results_to_stdout(project: Path) -> None:
    ok = run("spec", "validate", "--format", "json", cwd=project)
    assert ok.returncode == ExitCode.OK
    assert ok.stdout.startswith("{")
    assert ok.stderr == ""
    bad = run("inventory", "--env", "nowhere", cwd=project)
    assert bad.returncode == ExitCode.CONFIG
    assert bad.stdout == ""
    assert "error[unknown-environment]" in bad.stderr


def test_closed_pipe_ends_quietly(project: Path) -> None:
    db = Database.open(f"sqlite:///{project}/.zerodrift/state.db")
    trail = AuditTrail(db)
    for n in range(40):  # about 400 kB in either format: more than a pipe holds
        trail.append("test.bulk", f"item-{n}-" + "y" * 10_000, {})
    db.close()
    for fmt in ("jsonl", "json"):
        process = subprocess.Popen(
            [*ZERODRIFT, "audit", "log", "--format", fmt],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout is not None
        assert process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()  # what `| head -1` does
        stderr = process.stderr.read().decode()
        code = process.wait(timeout=60)
        assert first
        assert "Traceback" not in stderr, stderr
        assert "Exception ignored" not in stderr, stderr
        assert code == ExitCode.OPERATIONAL, (fmt, code, stderr)


@needs_namespaces
def test_read_only_state_folder(project: Path) -> None:
    state = project / ".zerodrift"
    before = fingerprint(project)
    for argv in (["inventory"], ["audit", "log"], ["audit", "checkpoint"]):
        result = run_with_read_only(state, *argv, cwd=project)
        assert result.returncode == ExitCode.OPERATIONAL, (argv, result.stderr)
        assert "error[database-read-only]" in result.stderr
        assert f"state folder {state} is read-only" in result.stderr
        assert "Traceback" not in result.stderr
    assert fingerprint(project) == before


@needs_namespaces
def test_read_only_project_folder_for_init(tmp_path: Path) -> None:
    target = tmp_path / "shop"
    target.mkdir()
    result = run_with_read_only(target, "init", str(target))
    assert result.returncode == ExitCode.OPERATIONAL, result.stderr
    assert "error[write-failed]" in result.stderr
    assert list(target.iterdir()) == []


@needs_namespaces
def test_init_works_offline(tmp_path: Path) -> None:
    result = run_offline("init", str(tmp_path / "shop"), "--format", "json")
    assert result.returncode == ExitCode.OK, result.stderr
    verify = run_offline("audit", "verify", cwd=tmp_path / "shop")
    assert verify.returncode == ExitCode.OK, verify.stderr


_SLOW_INIT = """
import sys, time
import zerodrift.protect.keys as keys

def slow_key(algorithm):
    sys.stderr.write("generating\\n")
    sys.stderr.flush()
    time.sleep(60)

# init imports the key functions when it runs, so this is what it calls.
keys.generate_private_key = slow_key
from zerodrift._cli.main import entrypoint
sys.argv = ["zerodrift", "init", sys.argv[1]]
entrypoint()
"""


def test_sigterm_during_init_leaves_nothing(tmp_path: Path) -> None:
    """A cancelled CI job stops init half-way: it exits 130 and cleans up."""
    target = tmp_path / "new" / "shop"
    process = subprocess.Popen(
        [ZERODRIFT[0], "-c", _SLOW_INIT, str(target)],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    assert process.stderr.readline() == "generating\n"
    assert any(tmp_path.rglob(".zerodrift-init-*")), "staging exists mid-way"
    process.terminate()
    assert process.wait(timeout=60) == ExitCode.INTERRUPTED
    assert "interrupted" in process.stderr.read()
    assert list(tmp_path.iterdir()) == []
