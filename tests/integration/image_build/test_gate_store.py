"""The gate reads the real image store: signatures, attestations, promotion."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.example import Example

pytestmark = [pytest.mark.slow]


def _gate(example: Example, root: Path, *args: str) -> tuple[int, dict[str, Any]]:
    done = example.run("gate", "--format", "json", *args, cwd=root)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def _status(report: dict[str, Any], rule: str) -> set[str]:
    return {r["status"] for r in report["results"] if r["rule"] == rule}


def test_gate_uses_the_store_and_enforces_promotion(
    example: Example, tmp_path: Path
) -> None:
    root = tmp_path / "shop"
    shutil.copytree(example.root, root, symlinks=True)

    code, report = _gate(example, root, "--env", "prod")
    for rule in (
        "image-in-store",
        "image-signed",
        "image-provenance",
        "image-sbom",
        "image-golden-manifest",
        "image-provenance-ancestor",
    ):
        assert _status(report, rule) == {"pass"}, (rule, report["results"])
    # Nothing was verified in staging yet, so prod must refuse every image.
    assert code == 1
    assert _status(report, "image-promotion") == {"fail"}

    done = example.run("verify", "--env", "staging", cwd=root)
    assert done.returncode == 0, done.stderr
    code, report = _gate(example, root, "--env", "prod")
    assert _status(report, "image-promotion") == {"pass"}
    assert code == 0, [r for r in report["results"] if r["status"] == "fail"]
    # The report and the audit trail name the digests that were judged.
    assert report["images"] == example.digests
    done = example.run(
        "audit", "log", "--action", "gate.run", "--format", "json", cwd=root
    )
    records = json.loads(done.stdout)["records"]
    assert records[-1]["details"]["images"] == example.digests


def test_gate_rejects_images_missing_from_the_store(
    example: Example, tmp_path: Path
) -> None:
    root = tmp_path / "shop"
    shutil.copytree(example.root, root, symlinks=True)
    shutil.rmtree(root / ".zerodrift" / "store")
    code, report = _gate(example, root, "--env", "dev")
    assert code == 1
    assert _status(report, "image-in-store") == {"fail"}


def test_a_verified_deploy_counts_for_promotion_but_not_another_digest(
    example: Example, tmp_path: Path
) -> None:
    """The promotion rule reads image.verified records for the exact digest."""
    from zerodrift.govern.audit import AuditTrail
    from zerodrift.oci.layout import Layout
    from zerodrift.protect.evidence import StoreEvidence
    from zerodrift.protect.keys import load_public_key
    from zerodrift.state import Database

    root = tmp_path / "shop"
    shutil.copytree(example.root, root, symlinks=True)
    web = example.digests["web"]
    db = Database.open(f"sqlite:///{root / '.zerodrift' / 'state.db'}")
    try:
        trail = AuditTrail(db)
        evidence = StoreEvidence(
            Layout.open(root / ".zerodrift" / "store"),
            [load_public_key("project", root / "keys" / "project.pub")],
            trail,
        )
        assert "staging" not in evidence.verified_in(web)
        trail.append(
            "image.verified",
            f"web@{web}",
            {"environment": "staging", "verifier": "UnsafeNoVerification"},
        )
        assert "staging" not in evidence.verified_in(web)
        trail.append(
            "image.verified",
            f"web@{web}",
            {"environment": "staging", "verifier": "TrustPolicyVerifier"},
        )
        assert "staging" in evidence.verified_in(web)
        assert "staging" not in evidence.verified_in(example.digests["api"])
        assert evidence.provenance_commit(web) is not None
        assert evidence.signer_key_ids(web)
    finally:
        db.close()
