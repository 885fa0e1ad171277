"""``zerodrift verify`` on an initialised project with a committed spec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import PASSPHRASE
from tests.integration.attest.conftest import (
    Key,
    SignedImage,
    build_signed_image,
    make_key,
)
from zerodrift.protect.keys import load_public_key, load_signer


def _project_key(project: Path) -> Key:
    signer = load_signer(project / ".zerodrift/keys/project.key", PASSPHRASE.encode())
    return Key(signer, load_public_key("project", project / "keys/project.pub"))


@pytest.fixture
def built(project: Path) -> SignedImage:
    """The example project with a signed image 'web' in its store."""
    return build_signed_image(
        project,
        _project_key(project),
        repo=project,
        store=project / ".zerodrift" / "store",
    )


def test_verify_passes_and_is_audited(cli, project: Path, built: SignedImage) -> None:  # type: ignore[no-untyped-def]
    result = cli("verify", "web", cwd=project)
    assert result.code == 0, result.err
    assert f"verified web@{built.image.digest}" in result.out

    result = cli("verify", f"web@{built.image.digest}", "--env", "prod",
                 "--format", "json", cwd=project)  # fmt: skip
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert document["kind"] == "verification"
    assert document["verified"] is True
    assert document["commit"] == built.commit
    assert [s["name"] for s in document["steps"]] == [
        "store", "signatures", "provenance", "golden manifest", "sbom",
    ]  # fmt: skip

    log = cli("audit", "log", "--action", "image", "--format", "json", cwd=project)
    actions = [r["action"] for r in json.loads(log.out)["records"]]
    assert actions.count("image.verified") == 2


def test_a_key_not_allowed_for_the_environment_fails_with_exit_1(  # type: ignore[no-untyped-def]
    cli, project: Path, tmp_path: Path
) -> None:
    other = make_key(tmp_path / "keys", "release")
    build_signed_image(
        project, other, repo=project, store=project / ".zerodrift" / "store"
    )
    # The release key is trusted for prod only; the image is signed by it.
    (project / "keys" / "release.pub").write_bytes(
        (tmp_path / "keys" / "release.pub").read_bytes()
    )
    spec = (project / "fleet.yaml").read_text()
    spec = spec.replace(
        "    project: keys/project.pub\n",
        "    project: keys/project.pub\n    release: keys/release.pub\n",
    )
    spec = spec.replace("    prod: [project]", "    prod: [release]")  # fmt: skip
    (project / "fleet.yaml").write_text(spec)

    assert cli("verify", "web", "--env", "prod", cwd=project).code == 0
    result = cli("verify", "web", "--env", "dev", "--format", "json", cwd=project)
    assert result.code == 1
    document = json.loads(result.out)
    assert document["verified"] is False
    assert document["failed_step"] == 2
    assert document["error"]["reference"] == "signature-wrong-environment"
    assert "'release'" in result.err
    assert "Traceback" not in result.err

    # The project key countersigns what the release key signed: dev accepts it.
    signed = cli("sign", "web", "--format", "json", cwd=project)
    assert signed.code == 0, signed.err
    assert len(json.loads(signed.out)["attestations"]) == 4  # with hardening
    assert cli("verify", "web", "--env", "dev", cwd=project).code == 0
    again = cli("sign", "web", "--format", "json", cwd=project)
    assert json.loads(again.out)["attestations"] == []


def test_unknown_environment_and_missing_store(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("verify", "web", "--env", "nowhere", cwd=project)
    assert result.code == 3
    assert "environment-unknown" in result.err
    spec = (project / "fleet.yaml").read_text()
    (project / "fleet.yaml").write_text(spec.replace("    dev: [project]\n", ""))
    result = cli("verify", "web", "--env", "dev", cwd=project)
    assert result.code == 3
    assert "no-trusted-keys" in result.err
    assert "trust.environments.dev" in result.err
    (project / "fleet.yaml").write_text(spec)
    result = cli("verify", "web", cwd=project)
    assert result.code == 3
    assert "store-missing" in result.err
    (project / ".zerodrift" / "store").mkdir()
    result = cli("verify", "web", cwd=project)
    assert result.code == 1
    assert "layout-truncated" in result.err


def test_verify_every_image_of_the_spec(cli, project: Path, built: SignedImage) -> None:  # type: ignore[no-untyped-def]
    result = cli("verify", "--format", "json", cwd=project)
    assert result.code == 1
    document = json.loads(result.out)
    assert document["kind"] == "verifications"
    rows = {row["image"]: row for row in document["images"]}
    assert rows["web"]["verified"] is True
    assert rows["web"]["digest"] == built.image.digest
    assert rows["api"]["verified"] is False
    assert rows["api"]["error"]["reference"] == "image-not-found"
    table_result = cli("verify", cwd=project)
    assert table_result.code == 1
    assert "FAILED" in table_result.out
