"""``zerodrift build`` in-process: JSON output, audit records and clear errors.

The example's images are switched to ``scratch`` so these tests need neither
mmdebstrap nor the mirror.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from zerodrift.oci import Layout

DEBIAN = "base: debian:bookworm\n    variant: extract\n    packages: [busybox-static]"


def _commit(root: Path) -> None:
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "spec"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


@pytest.fixture
def scratch_project(project: Path) -> Path:
    spec = project / "fleet.yaml"
    spec.write_text(spec.read_text().replace(DEBIAN, "base: scratch"))
    return project


def test_build_prints_json_and_records_each_image(
    cli: Any, scratch_project: Path
) -> None:
    _commit(scratch_project)

    result = cli("build", "web", "--format", "json", cwd=scratch_project)
    audit = cli("audit", "log", "--action", "image", "--format", "json",
                cwd=scratch_project)  # fmt: skip

    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert document["kind"] == "build"
    (image,) = document["images"]
    assert image["image"] == "web"
    assert image["manifest_digest"].startswith("sha256:")
    assert image["dirty"] is False
    assert len(image["attestations"]) == 4  # provenance, SBOM, manifest, hardening
    assert "web: tagged web" in result.err
    (record,) = json.loads(audit.out)["records"]
    assert record["action"] == "image.build"
    assert record["subject"] == f"web@{image['manifest_digest']}"


def test_copy_escaping_the_project_is_a_config_error_without_traceback(
    cli: Any, scratch_project: Path
) -> None:
    spec = scratch_project / "fleet.yaml"
    spec.write_text(spec.read_text().replace("{src: app/web,", "{src: ../web,"))
    _commit(scratch_project)

    result = cli("build", "web", cwd=scratch_project)

    assert result.code == 3
    assert "copy-source-refused" in result.err
    assert "images.web.copy[0].src" in result.err
    assert "Traceback" not in result.err
    assert Layout.open(scratch_project / ".zerodrift" / "store").tags() == {}


def test_unknown_image_is_a_usage_level_config_error(
    cli: Any, scratch_project: Path
) -> None:
    _commit(scratch_project)

    result = cli("build", "nope", cwd=scratch_project)

    assert result.code == 3
    assert "image-unknown" in result.err
    assert "api, db, web" in result.err


def test_build_outside_git_asks_for_a_commit(cli: Any, scratch_project: Path) -> None:
    result = cli("build", "web", cwd=scratch_project)

    assert result.code == 3
    assert "build-needs-commit" in result.err


def test_full_build_forgets_lock_entries_of_removed_images(
    cli: Any, scratch_project: Path
) -> None:
    lock = scratch_project / "zerodrift.lock"
    stale = {"base": "debian:bookworm", "variant": "extract", "requested": [],
             "epoch": 1, "packages": [], "rootfs_sha256": "00" * 32}  # fmt: skip
    lock.write_text(json.dumps({"lock_version": 1, "images": {"gone": stale}}))
    _commit(scratch_project)

    single = cli("build", "web", cwd=scratch_project)
    kept = json.loads(lock.read_text())["images"]
    full = cli("build", cwd=scratch_project)

    assert single.code == 0, single.err
    assert "gone" in kept
    assert full.code == 0, full.err
    assert json.loads(lock.read_text())["images"] == {}
