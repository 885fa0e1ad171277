"""Image controls on a real built store: signatures, attestations, hardening.

The session's built example is copied before anything changes; its audit
trail (SQLite, written by ``zerodrift build``) and its OCI store are the
evidence.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.example import Example, git
from zerodrift.comply.controls.hardening import hardening_resolved, no_baked_secrets
from zerodrift.comply.controls.images import images_signed_attested
from zerodrift.comply.evidence import Evidence
from zerodrift.comply.registry import Outcome
from zerodrift.govern.audit import AuditTrail
from zerodrift.project import Project
from zerodrift.protect.keys import generate_private_key, load_public_key, write_keypair
from zerodrift.state import Database, utc_now

pytestmark = pytest.mark.slow


class Shop:
    """A copy of the built example, its database and an evidence factory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.project = Project(root)
        self.db = Database.open(self.project.database_url)

    def evidence(self, **overrides: Any) -> Evidence:
        spec = self.project.load_spec()
        values: dict[str, Any] = {
            "db": self.db,
            "as_of": utc_now(),
            "spec": spec,
            "policy": spec.fleet.compliance,
            "keys": lambda: [
                load_public_key("project", self.root / "keys" / "project.pub")
            ],
            "store": self.project.state_dir / "store",
        }
        values.update(overrides)
        return Evidence(**values)

    def record(self, action: str, subject: str, details: dict[str, Any]) -> int:
        return AuditTrail(self.db).append(action, subject, details).seq


@pytest.fixture
def shop(example: Example, tmp_path: Path) -> Iterator[Shop]:
    root = shutil.copytree(example.root, tmp_path / "shop", symlinks=True)
    copy = Shop(root)
    yield copy
    copy.db.close()


def test_images_pass_once_signed_attested_and_reproducible(
    shop: Shop, tmp_path: Path
) -> None:
    verdict = images_signed_attested(shop.evidence())
    assert verdict.outcome is Outcome.FAIL
    assert verdict.summary.count("reproducibility never checked") == 3

    before = utc_now()
    seq = shop.record(
        "image.reproducibility", "api,db,web", {"reproducible": True, "differing": []}
    )
    verdict = images_signed_attested(shop.evidence())
    assert verdict.outcome is Outcome.PASS, verdict.summary
    assert ("audit-record", str(seq)) in [(r.kind, r.id) for r in verdict.evidence]
    # As of before the check, the same store did not pass.
    assert images_signed_attested(shop.evidence(as_of=before)).outcome is (Outcome.FAIL)

    # Signatures count only with a key the trust policy names.
    stranger = tmp_path / "stranger.pub"
    write_keypair(
        generate_private_key(), tmp_path / "stranger.key", stranger, b"x" * 16
    )
    untrusted = shop.evidence(keys=lambda: [load_public_key("stranger", stranger)])
    verdict = images_signed_attested(untrusted)
    assert verdict.outcome is Outcome.FAIL
    assert verdict.summary.count("no attestation signed by a trusted key") == 3

    shop.record(
        "image.reproducibility", "web", {"reproducible": False, "differing": ["web"]}
    )
    verdict = images_signed_attested(shop.evidence())
    assert verdict.outcome is Outcome.FAIL
    assert verdict.summary == "web: not reproducible (two builds differed)"


def test_image_controls_need_a_recorded_build(shop: Shop) -> None:
    # Before the first build there was nothing to judge (which is not a pass).
    before = shop.evidence(as_of="2000-01-01T00:00:00.000000Z")
    for control in (images_signed_attested, hardening_resolved, no_baked_secrets):
        assert control(before).outcome is Outcome.NOT_APPLICABLE


def test_images_fail_without_store_or_attestations(shop: Shop) -> None:
    shop.record("image.reproducibility", "api,db,web", {"reproducible": True})
    shutil.rmtree(shop.project.state_dir / "store" / "blobs")
    (shop.project.state_dir / "store" / "blobs").mkdir()
    verdict = images_signed_attested(shop.evidence())
    assert verdict.outcome is Outcome.FAIL
    assert "has no attestation signed" in verdict.summary
    assert hardening_resolved(shop.evidence()).outcome is Outcome.FAIL

    shutil.rmtree(shop.project.state_dir / "store")
    verdict = images_signed_attested(shop.evidence())
    assert verdict.summary == "no image store: nothing was built"


def test_hardening_reports_pass_and_fail_on_an_unattested_build(shop: Shop) -> None:
    for control in (hardening_resolved, no_baked_secrets):
        verdict = control(shop.evidence())
        assert verdict.outcome is Outcome.PASS, verdict.summary
        assert len(verdict.evidence) == 3

    # A newer build of web whose digest has no signed report in the store.
    shop.record("image.build", "web@sha256:" + "0" * 64, {"signed": False})
    for control in (hardening_resolved, no_baked_secrets):
        verdict = control(shop.evidence())
        assert verdict.outcome is Outcome.FAIL
        assert verdict.summary.endswith("newest build of web")


WAIVED_WEB = """    hardening:
      allow_shell: true
      allow_package_manager: true
      waivers:
        - check: secret-file
          path: /srv/www/.htpasswd
          reason: legacy basic-auth file, removal planned
          expires: 2099-01-31
  api:"""


def test_a_waived_secret_is_still_a_baked_secret(example: Example, shop: Shop) -> None:
    spec = shop.root / "fleet.yaml"
    text = spec.read_text()
    old = "    hardening: {allow_shell: true, allow_package_manager: true}\n  api:"
    spec.write_text(text.replace(old, WAIVED_WEB, 1))
    (shop.root / "app" / "web" / ".htpasswd").write_text("admin:$apr1$x$y\n")
    git(shop.root, "add", "-A", env=example.env)
    git(shop.root, "commit", "-qm", "web: basic auth", env=example.env)
    done = example.run("build", "web", cwd=shop.root)
    assert done.returncode == 0, done.stderr

    verdict = no_baked_secrets(shop.evidence())
    assert verdict.outcome is Outcome.FAIL
    assert verdict.summary == "web: secret-file at /srv/www/.htpasswd (waived)"

    verdict = hardening_resolved(shop.evidence())
    assert verdict.outcome is Outcome.PASS, verdict.summary
    verdict = hardening_resolved(shop.evidence(as_of="2099-02-01T00:00:00.000000Z"))
    assert verdict.outcome is Outcome.FAIL
    assert "waiver expired 2099-01-31" in verdict.summary
