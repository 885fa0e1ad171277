"""run_gate on a real repository: image provenance ancestry checked with git.

The image store is replaced by the in-memory evidence stand-in (the store is
not part of this branch); the commits and their ancestry are real.
"""

from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path

import pytest

from tests.support.gate import InMemoryEvidence, StoredImage
from zerodrift.gate import GateReport, GateRequest, Status, run_gate
from zerodrift.protect.keys import generate_private_key, key_id

SPEC = """\
version: 1
name: shop
images:
  web:
    copy: [{src: app/web, dest: /srv/www}]
services:
  web: {image: web}
environments:
  staging: {}
  prod: {}
trust:
  keys: {ci: keys/ci.pub}
  environments: {staging: [ci], prod: [ci]}
policy:
  promotion: {prod: [staging]}
"""


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str]:
    """A committed project; returns its root and the trusted key's id."""
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
    )

    root = tmp_path / "shop"
    (root / "app" / "web").mkdir(parents=True)
    (root / "keys").mkdir()
    (root / "app" / "web" / "index.html").write_text("hi\n")
    (root / "fleet.yaml").write_text(SPEC)
    public = (
        generate_private_key()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    (root / "keys" / "ci.pub").write_bytes(public)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "fleet")
    return root, key_id(public)


def _run(root: Path, stored: StoredImage, env: str = "prod") -> GateReport:
    return run_gate(
        GateRequest(
            root=root,
            environment=env,
            evidence=InMemoryEvidence({"web": stored}),
            today=date(2026, 12, 3),
        )
    )


def _statuses(report: GateReport, rule: str) -> list[Status]:
    return [r.status for r in report.results if r.rule == rule]


def test_image_built_from_an_ancestor_passes(repo: tuple[Path, str]) -> None:
    root, key = repo
    built_at = git(root, "rev-parse", "HEAD")
    (root / "README.md").write_text("later commit\n")
    git(root, "add", "README.md")
    git(root, "commit", "-q", "-m", "docs")
    stored = StoredImage("sha256:" + "1" * 64, {key}, commit=built_at)
    stored.verified_in = {"staging"}
    report = _run(root, stored)
    assert not report.rejected, report.failures()
    assert {r.status for r in report.results} == {Status.PASS}


def test_image_built_on_another_branch_fails(repo: tuple[Path, str]) -> None:
    root, key = repo
    git(root, "switch", "-q", "-c", "experiment")
    (root / "README.md").write_text("experiment\n")
    git(root, "add", "README.md")
    git(root, "commit", "-q", "-m", "experiment")
    elsewhere = git(root, "rev-parse", "HEAD")
    git(root, "switch", "-q", "main")
    stored = StoredImage("sha256:" + "2" * 64, {key}, commit=elsewhere)
    stored.verified_in = {"staging"}
    report = _run(root, stored)
    assert _statuses(report, "image-provenance-ancestor") == [Status.FAIL]
    assert report.rejected


def test_untrusted_key_and_skipped_promotion_fail_in_prod(
    repo: tuple[Path, str],
) -> None:
    root, _ = repo
    head = git(root, "rev-parse", "HEAD")
    stored = StoredImage("sha256:" + "3" * 64, {"f" * 64}, commit=head)
    report = _run(root, stored)
    assert _statuses(report, "image-signed") == [Status.FAIL]
    assert _statuses(report, "image-promotion") == [Status.FAIL]
    staging = _run(root, stored, env="staging")
    assert _statuses(staging, "image-promotion") == [Status.PASS]
