"""Repository facts from real git: uncommitted files, ancestry, SSH signatures."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from zerodrift.gate.source import commit_signature, is_ancestor, source_facts


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "app" / "web").mkdir(parents=True)
    (root / "fleet.yaml").write_text("version: 1\nname: shop\n")
    (root / "app" / "web" / "index.html").write_text("hello\n")
    (root / "README.md").write_text("shop\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    return root


DEPENDS = ["fleet.yaml", "app/web"]


def test_clean_tree_has_no_dirty_paths(repo: Path) -> None:
    facts = source_facts(repo, DEPENDS)
    assert facts.in_repository
    assert facts.head == git(repo, "rev-parse", "HEAD")
    assert facts.dirty == ()


def test_modified_staged_and_untracked_dependencies_are_dirty(repo: Path) -> None:
    (repo / "app" / "web" / "index.html").write_text("changed\n")
    (repo / "app" / "web" / "new.js").write_text("x\n")
    (repo / "fleet.yaml").write_text("version: 1\nname: shop2\n")
    git(repo, "add", "fleet.yaml")
    (repo / "README.md").write_text("not a dependency\n")
    facts = source_facts(repo, DEPENDS)
    assert facts.dirty == ("app/web/index.html", "app/web/new.js", "fleet.yaml")


def test_project_in_a_subfolder_of_the_repository(repo: Path) -> None:
    project = repo / "deploy"
    project.mkdir()
    (project / "fleet.yaml").write_text("version: 1\nname: sub\n")
    assert source_facts(project, ["fleet.yaml"]).dirty == ("fleet.yaml",)


def test_folder_outside_git(tmp_path: Path) -> None:
    facts = source_facts(tmp_path, ["fleet.yaml"])
    assert not facts.in_repository
    assert facts.head is None


def test_ancestry(repo: Path) -> None:
    first = git(repo, "rev-parse", "HEAD")
    git(repo, "switch", "-q", "-c", "side")
    (repo / "README.md").write_text("side\n")
    git(repo, "commit", "-q", "-am", "side")
    side = git(repo, "rev-parse", "HEAD")
    git(repo, "switch", "-q", "main")
    (repo / "README.md").write_text("main\n")
    git(repo, "commit", "-q", "-am", "main")
    assert is_ancestor(repo, first)
    assert is_ancestor(repo, git(repo, "rev-parse", "HEAD"))
    assert not is_ancestor(repo, side)
    assert not is_ancestor(repo, "f" * 40)
    assert not is_ancestor(repo, "--help")


def _ssh_key(folder: Path, name: str) -> tuple[Path, str]:
    key = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)],
        check=True,
    )
    return key, (folder / f"{name}.pub").read_text().strip()


def test_ssh_signed_commit_is_checked_against_allowed_signers(
    repo: Path, tmp_path: Path
) -> None:
    key, public = _ssh_key(tmp_path, "ci")
    other, _ = _ssh_key(tmp_path, "stranger")
    allowed = repo / "allowed_signers"
    allowed.write_text(f'test@example.invalid namespaces="git" {public}\n')
    git(repo, "config", "gpg.format", "ssh")

    assert commit_signature(repo, allowed).status == "N"

    git(repo, "config", "user.signingkey", str(key))
    git(repo, "commit", "-q", "--allow-empty", "-S", "-m", "signed")
    good = commit_signature(repo, allowed)
    assert good.status == "G"
    assert good.fingerprint is not None
    assert good.fingerprint.startswith("SHA256:")

    git(repo, "config", "user.signingkey", str(other))
    git(repo, "commit", "-q", "--allow-empty", "-S", "-m", "by a stranger")
    assert commit_signature(repo, allowed).status != "G"
