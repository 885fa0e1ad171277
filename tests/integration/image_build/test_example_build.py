"""The example fleet, built with the real tools and read back by others."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.image_build.conftest import Podman
from tests.support.example import Example, digests_of, git
from zerodrift.detect.manifest import ARTIFACT_TYPE, GoldenManifest
from zerodrift.govern.audit import AuditTrail
from zerodrift.oci import Layout
from zerodrift.state import Database

pytestmark = pytest.mark.slow


def test_same_commit_in_two_folders_gives_the_same_digests(
    example: Example, tmp_path: Path
) -> None:
    first = example.clone(tmp_path / "first")
    second = example.clone(tmp_path / "second")

    one = digests_of(example.build_json(first))
    # The second clone starts with an empty cache: mmdebstrap runs again and
    # must give the base tarball recorded in the lock file.
    two = digests_of(
        json.loads(
            example.run(
                "build", "--format", "json", cwd=second,
                env={"ZERODRIFT_CACHE_DIR": str(tmp_path / "empty-cache")},
            ).stdout
        )
    )  # fmt: skip

    assert set(one) == {"web", "api", "db"}
    assert one == two == example.digests


def test_store_holds_images_golden_manifests_and_attestations(example: Example) -> None:
    layout = Layout.open(example.root / ".zerodrift" / "store")

    report = layout.check()

    assert set(report.tags) == {"web", "api", "db"}
    web = layout.resolve("web")
    assert web.digest == example.digests["web"]
    golden_refs = layout.referrers(web.digest, artifact_type=ARTIFACT_TYPE)
    assert len(golden_refs) == 1
    blob = layout.read_json(golden_refs[0])["layers"][0]
    golden = GoldenManifest.from_json(layout.read_blob(blob["digest"]))
    paths = {e.path: e for e in golden.entries}
    assert paths["/srv/www/index.html"].mode == 0o444
    assert paths["/bin/busybox"].type == "file"
    assert paths["/tmp"].mode == 0o1777
    assert "/etc/hostname" not in paths
    assert "/etc/resolv.conf" not in paths
    assert not any(p.startswith("/dev/") for p in paths)
    assert len(layout.referrers(web.digest)) >= 4  # golden + 3 signed statements


def test_lock_records_resolved_packages(example: Example) -> None:
    lock = json.loads((example.root / "zerodrift.lock").read_text())

    entry = lock["images"]["web"]
    (package,) = entry["packages"]
    assert package["name"] == "busybox-static"
    assert package["architecture"] == "amd64"
    assert len(package["sha256"]) == 64
    assert entry["requested"] == ["busybox-static"]


def test_skopeo_and_umoci_read_the_layout(example: Example, tmp_path: Path) -> None:
    store = example.root / ".zerodrift" / "store"

    inspect = subprocess.run(
        ["skopeo", "inspect", f"oci:{store}:web"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    unpack = subprocess.run(
        ["umoci", "unpack", "--image", f"{store}:web", str(tmp_path / "bundle")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip

    assert json.loads(inspect.stdout)["Digest"] == example.digests["web"]
    assert unpack.returncode == 0, unpack.stderr
    rootfs = tmp_path / "bundle" / "rootfs"
    assert (rootfs / "srv" / "www" / "index.html").read_text().startswith("<!doctype")
    config = json.loads((tmp_path / "bundle" / "config.json").read_text())
    assert config["process"]["user"]["uid"] == 65534
    assert config["process"]["args"][:2] == ["/bin/busybox", "httpd"]


@pytest.mark.podman
def test_podman_runs_the_web_image_read_only(example: Example, podman: Podman) -> None:
    store = example.root / ".zerodrift" / "store"
    podman.run("skopeo", "copy", f"oci:{store}:web", "containers-storage:zd-test/web")
    digest = podman.run("image", "inspect", "--format", "{{.Digest}}", "zd-test/web")

    podman.run(
        "run", "-d", "--rm", "--read-only", "--network", "none",
        "--cap-drop", "ALL", "--name", "zd-build-web", "zd-test/web",
    )  # fmt: skip
    try:
        page = _fetch_inside(podman, "zd-build-web", "http://127.0.0.1:8080/")
    finally:
        podman.run("rm", "-f", "zd-build-web", check=False)

    assert digest.stdout.strip() == example.digests["web"]
    assert "example shop" in page


def _fetch_inside(podman: Podman, name: str, url: str) -> str:
    deadline = time.monotonic() + 10
    while True:
        done = podman.run(
            "exec", name, "/bin/busybox", "wget", "-q", "-O", "-", url, check=False
        )
        if done.returncode == 0 or time.monotonic() > deadline:
            return done.stdout
        time.sleep(0.2)


def test_check_reproducible_builds_twice_and_agrees(example: Example) -> None:
    done = example.run("build", "web", "--check-reproducible", "--format", "json")

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["reproducible"] is True
    [web] = result["images"]
    assert web["manifest_digest"] == example.digests["web"]
    # The example's last build was from this commit: the rebuild matches it.
    assert web["stored_digest"] == example.digests["web"]
    assert web["matches_store"] is True


def test_check_reproducible_fails_when_a_recorded_build_of_the_commit_differs(
    example: Example, tmp_path: Path
) -> None:
    clone = example.clone(tmp_path / "clone")
    head = git(clone, "rev-parse", "HEAD", env=example.env).strip()
    first = example.run("build", "web", "--check-reproducible", "--format", "json",
                        cwd=clone)  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["images"][0]["matches_store"] is None, (
        "nothing was built in the clone yet: there is nothing to compare with"
    )
    # Stand-in for an earlier build of this commit elsewhere (another
    # machine, older tools) whose digest differs: its audit record, appended
    # through the real audit trail.
    other = "sha256:" + "ab" * 32
    db = Database.open(f"sqlite:///{clone / '.zerodrift' / 'state.db'}")
    try:
        AuditTrail(db).append(
            "image.build",
            f"web@{other}",
            {"manifest_digest": other, "commit": head, "dirty": False},
        )
    finally:
        db.close()

    second = example.run("build", "web", "--check-reproducible", "--format", "json",
                         cwd=clone)  # fmt: skip

    assert second.returncode == 1
    assert "build-unlike-store" in second.stderr
    verdict = json.loads(second.stdout)
    assert verdict["reproducible"] is False
    assert verdict["images"][0]["stored_digest"] == other
    assert verdict["images"][0]["matches_store"] is False


def test_git_ignored_files_under_a_copied_folder_make_the_build_dirty(
    example: Example, tmp_path: Path
) -> None:
    clone = example.clone(tmp_path / "clone")
    with (clone / ".gitignore").open("a") as ignore:
        ignore.write("app/web/local.html\n")
    git(clone, "add", ".gitignore", env=example.env)
    git(clone, "commit", "-qm", "ignore a local page", env=example.env)
    clean = example.build_json(clone, "web")
    assert clean["images"][0]["dirty"] is False

    # Not in the commit, yet copied into the image with app/web.
    (clone / "app" / "web" / "local.html").write_text("<p>only here</p>\n")
    dirty = example.run("build", "web", "--format", "json", cwd=clone)

    assert dirty.returncode == 0, dirty.stderr
    assert json.loads(dirty.stdout)["images"][0]["dirty"] is True
    assert "uncommitted changes" in dirty.stderr


def test_changed_resolution_fails_unless_update_lock(
    example: Example, tmp_path: Path
) -> None:
    clone = example.clone(tmp_path / "clone")
    lock_path = clone / "zerodrift.lock"
    lock = json.loads(lock_path.read_text())
    real_version = lock["images"]["web"]["packages"][0]["version"]
    for entry in lock["images"].values():
        entry["packages"][0]["version"] = "1:0.0-pinned-long-ago"
    lock_path.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    git(clone, "commit", "-qam", "pin an old busybox", env=example.env)

    refused = example.run("build", "web", cwd=clone)
    tags_after_refusal = Layout.open(clone / ".zerodrift" / "store").tags()
    accepted = example.run("build", "web", "--update-lock", cwd=clone)

    assert refused.returncode == 3
    assert "lock-mismatch" in refused.stderr
    assert f"busybox-static 1:0.0-pinned-long-ago -> {real_version}" in refused.stderr
    assert not tags_after_refusal
    assert accepted.returncode == 0, accepted.stderr
    updated = json.loads(lock_path.read_text())
    assert updated["images"]["web"]["packages"][0]["version"] == real_version
    audit = example.run("audit", "log", "--action", "image", "--format", "json",
                        cwd=clone)  # fmt: skip
    actions = [r["action"] for r in json.loads(audit.stdout)["records"]]
    assert sorted(actions) == ["image.build", "image.build_failed"]


def test_killed_build_leaves_nothing_tagged(example: Example, tmp_path: Path) -> None:
    clone = example.clone(tmp_path / "clone")
    process = subprocess.Popen(
        [sys.executable, "-m", "zerodrift", "build", "web"],
        cwd=clone, env=example.env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("web: manifest sha256:"):
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)

    assert process.returncode == -signal.SIGKILL
    layout = Layout.open(clone / ".zerodrift" / "store")
    assert "web" not in layout.tags()
    layout.check()
    verify = example.run("verify", "web", cwd=clone)
    assert verify.returncode != 0
    rebuilt = example.build_json(clone, "web")
    assert digests_of(rebuilt)["web"] == example.digests["web"]
