"""End to end on the example fleet: build, verify, push, pull into a clone, verify.

Uses the build tests' session fixture (a real mmdebstrap build of the
example, committed with its lock file), so this module builds the example
once more per session.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.example import Example
from tests.support.registry import Registry

pytestmark = [pytest.mark.slow, pytest.mark.registry]


def test_example_images_verify(example: Example) -> None:
    done = example.run("verify", "--env", "prod", "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["images"]
    assert {r["image"]: r["digest"] for r in rows} == example.digests
    web = example.digests["web"]
    done = example.run("verify", f"web@{web}", "--env", "dev")
    assert done.returncode == 0, done.stderr
    done = example.run("verify", "web", "--format", "json")
    report = json.loads(done.stdout)
    assert report["digest"] == example.digests["web"]
    assert report["signers"]["https://slsa.dev/provenance/v1"] == ["project"]


def test_push_pull_into_a_clone_then_verify(
    example: Example,
    registry: Registry,
    tmp_path: Path,
) -> None:
    digest = example.digests["api"]
    url = registry.url("example/api")
    pushed = example.run("push", "api", "--to", url, "--format", "json")
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)["digest"] == digest

    clone = example.clone(tmp_path / "clone")
    pulled = example.run("pull", f"{url}@{digest}", "--format", "json", cwd=clone)
    assert pulled.returncode == 0, pulled.stderr
    # The golden manifest, and four signed statements (provenance, SBOM, golden
    # manifest, hardening report).
    assert len(json.loads(pulled.stdout)["referrers"]) == 5

    verified = example.run("verify", "api", "--env", "prod", cwd=clone)
    assert verified.returncode == 0, verified.stderr
    assert f"verified api@{digest}" in verified.stdout


def test_a_flipped_bit_in_the_built_store_fails_verification(
    example: Example,
    tmp_path: Path,
) -> None:
    clone = example.clone(tmp_path / "clone")
    store = example.root / ".zerodrift" / "store"
    (clone / ".zerodrift").mkdir(exist_ok=True)
    shutil.copytree(store, clone / ".zerodrift" / "store")
    manifest_digest = example.digests["db"].removeprefix("sha256:")
    blobs = clone / ".zerodrift" / "store" / "blobs" / "sha256"
    manifest = json.loads((blobs / manifest_digest).read_text())
    layer = blobs / manifest["layers"][-1]["digest"].removeprefix("sha256:")
    data = bytearray(layer.read_bytes())
    data[len(data) // 3] ^= 0x04
    layer.write_bytes(bytes(data))
    done = example.run("verify", "db", cwd=clone)
    assert done.returncode == 1
    assert "step 1 (store) failed" in done.stderr
    assert "blob-digest-mismatch" in done.stderr


def test_waivers_in_the_example_build(example: Example, tmp_path: Path) -> None:
    clone = example.clone(tmp_path / "clone")
    spec = (clone / "fleet.yaml").read_text()
    allowed = "    hardening: {allow_shell: true, allow_package_manager: true}\n"
    assert allowed in spec

    def build_with(waiver_expiry: str) -> tuple[int, str]:
        waived = (
            "    hardening:\n"
            "      allow_package_manager: true\n"
            "      waivers:\n"
            "        - check: shell\n"
            "          reason: busybox httpd serves the demo pages\n"
            f"          expires: {waiver_expiry}\n"
        )
        (clone / "fleet.yaml").write_text(spec.replace(allowed, waived, 1))
        done = example.run("build", "web", cwd=clone)
        return done.returncode, done.stderr

    code, err = build_with("2099-12-31")
    assert code == 0, err
    code, err = build_with("2020-01-01")
    assert code == 1
    assert "error[hardening-failed]" in err
    assert "waiver-expired: waiver #1 of check 'shell' expired on 2020-01-01" in err
    assert "shell /bin/busybox: busybox is a multi-call binary" in err
