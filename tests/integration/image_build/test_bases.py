"""Builds from scratch and from pinned OCI bases, through the real build code."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from zerodrift.detect.manifest import GoldenManifest, entries_from_tar, merge_layers
from zerodrift.errors import ConfigError, IntegrityError
from zerodrift.oci import Layout
from zerodrift.oci.descriptor import MEDIA_TYPE_LAYER_ZSTD
from zerodrift.protect.build import (
    BuildOptions,
    BuildResult,
    SourceState,
    build_image,
    source_state,
)
from zerodrift.protect.lock import Lock
from zerodrift.spec.models import Image

EPOCH = 1_700_000_000
SOURCE = SourceState("0" * 40, False, EPOCH)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "app" / "static").mkdir(parents=True)
    (root / "app" / "server").write_bytes(b"\x7fELF not really\n")
    (root / "app" / "server").chmod(0o755)
    (root / "app" / "static" / "index.html").write_text("<h1>hello</h1>\n")
    return root


def _build(
    repo: Path, layout: Layout, recipe: Mapping[str, object], **options: object
) -> BuildResult:
    image = Image.model_validate(recipe)
    return build_image(
        repo,
        "app",
        image,
        layout,
        BuildOptions(cache_dir=repo / ".cache", **options),  # type: ignore[arg-type]
        lock=Lock(),
        source=SOURCE,
        has_health_check=True,
    )


SCRATCH = {
    "base": "scratch",
    "copy": [
        {"src": "app/server", "dest": "/usr/bin/server"},
        {"src": "app/static", "dest": "/srv/www", "owner": "100:101"},
    ],
    "entrypoint": ["/usr/bin/server"],
    "writable": ["/tmp"],
}


def test_scratch_image_golden_manifest_matches_its_layers(
    repo: Path, tmp_path: Path
) -> None:
    layout = Layout.create(tmp_path / "store")

    result = _build(repo, layout, SCRATCH)

    assert layout.tags()["app"].digest == result.manifest_digest
    assert len(result.layers) == 1
    layers = []
    for item in layout.read_json(result.image)["layers"]:
        with layout.open_blob(item["digest"]) as reader:
            layers.append(entries_from_tar(reader))  # type: ignore[arg-type]
    assert GoldenManifest.build("app", merge_layers(layers)) == result.golden
    paths = result.golden.by_path()
    assert paths["/srv/www/index.html"].uid == 100
    assert paths["/usr/bin/server"].mode == 0o755
    config = layout.read_json(result.config)
    assert config["config"]["User"] == "65534:65534"
    assert config["created"] == "2023-11-14T22:13:20Z"
    assert config["rootfs"]["diff_ids"] == [result.layers[0].diff_id]


def test_same_inputs_in_another_folder_give_the_same_digest(
    repo: Path, tmp_path: Path
) -> None:
    other = tmp_path / "elsewhere" / "repo"
    other.parent.mkdir()
    subprocess.run(["cp", "-r", str(repo), str(other)], check=True)
    os.utime(other / "app" / "server", (EPOCH + 50, EPOCH + 50))

    one = _build(repo, Layout.create(tmp_path / "one"), SCRATCH)
    two = _build(other, Layout.create(tmp_path / "two"), SCRATCH)

    assert one.manifest_digest == two.manifest_digest


def test_zstd_layers_build_and_unpack(repo: Path, tmp_path: Path) -> None:
    layout = Layout.create(tmp_path / "store")

    result = _build(repo, layout, SCRATCH, compression="zstd")

    assert result.layers[0].descriptor.media_type == MEDIA_TYPE_LAYER_ZSTD
    assert (result.rootfs.parent.exists()) is False  # deleted after the build
    assert result.golden.by_path()["/srv/www/index.html"].size == 15


def test_oci_layout_base_pinned_by_digest(repo: Path, tmp_path: Path) -> None:
    base_store = Layout.create(repo / "bases")
    base = _build(repo, base_store, SCRATCH)
    layout = Layout.create(tmp_path / "store")
    recipe = {
        "base": f"oci-layout:bases@{base.manifest_digest}",
        "copy": [{"src": "app/static/index.html", "dest": "/srv/extra.html"}],
    }

    result = _build(repo, layout, recipe)

    paths = result.golden.by_path()
    assert "/usr/bin/server" in paths
    assert "/srv/extra.html" in paths
    assert paths["/srv/www/index.html"].uid == 100
    assert len(result.layers) == 2


def test_oci_layout_base_with_unknown_digest_is_refused(
    repo: Path, tmp_path: Path
) -> None:
    Layout.create(repo / "bases")
    recipe = {"base": "oci-layout:bases@sha256:" + "ab" * 32}

    with pytest.raises(IntegrityError) as info:
        _build(repo, Layout.create(tmp_path / "store"), recipe)
    assert info.value.reference == "blob-missing"


def _hostile_archive(path: Path) -> None:
    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo("../../escaped")
        payload = b"owned"
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))


def test_oci_archive_base_with_traversal_is_refused(repo: Path, tmp_path: Path) -> None:
    _hostile_archive(repo / "base.tar")
    recipe = {"base": "oci-archive:base.tar@sha256:" + "cd" * 32}
    layout = Layout.create(tmp_path / "store")

    with pytest.raises(ConfigError) as info:
        _build(repo, layout, recipe)

    assert info.value.reference == "archive-unsafe-path"
    assert info.value.location is not None
    assert info.value.location.field == "images.app.base"
    assert not (tmp_path / "escaped").exists()
    assert layout.tags() == {}


def test_missing_base_path_is_refused(repo: Path, tmp_path: Path) -> None:
    recipe = {"base": "oci-archive:nope.tar@sha256:" + "cd" * 32}

    with pytest.raises(ConfigError) as info:
        _build(repo, Layout.create(tmp_path / "store"), recipe)
    assert info.value.reference == "base-missing"


def test_source_state_needs_a_commit_or_source_date_epoch(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        source_state(tmp_path, environ={})
    assert info.value.reference == "build-needs-commit"

    state = source_state(tmp_path, environ={"SOURCE_DATE_EPOCH": "1234"})
    assert (state.commit, state.dirty, state.epoch) == (None, True, 1234)


def test_source_state_reads_the_commit_time_and_dirty_flag(repo: Path) -> None:
    env = {
        **os.environ,
        "GIT_COMMITTER_DATE": "2024-01-02T03:04:05Z",
        "GIT_AUTHOR_DATE": "2024-01-02T03:04:05Z",
    }
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True)

    clean = source_state(repo)
    (repo / "app" / "new").write_text("uncommitted")
    dirty = source_state(repo)

    assert clean.epoch == 1704164645
    assert clean.dirty is False
    assert clean.commit is not None
    assert len(clean.commit) == 40
    assert dirty.dirty is True


def _layout_with_device(path: Path) -> str:
    """An OCI layout whose one layer holds /dev/null (a base may ship devices)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        folder = tarfile.TarInfo("dev")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(folder)
        node = tarfile.TarInfo("dev/null")
        node.type, node.mode, node.devmajor, node.devminor = (
            tarfile.CHRTYPE,
            0o666,
            1,
            3,
        )
        archive.addfile(node)
    layout = Layout.create(path)
    layer = layout.write_blob(raw.getvalue(), "application/vnd.oci.image.layer.v1.tar")
    config = {"architecture": "amd64", "os": "linux",
              "rootfs": {"type": "layers", "diff_ids": [layer.digest]}}  # fmt: skip
    return layout.add_image(config, [layer], tag="base").digest


def test_device_nodes_from_a_pinned_base_are_kept(repo: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("creating device nodes needs root")
    digest = _layout_with_device(repo / "bases")
    recipe = {"base": f"oci-layout:bases@{digest}"}

    result = _build(repo, Layout.create(tmp_path / "store"), recipe)

    null = result.golden.by_path()["/dev/null"]
    assert (null.type, null.rdev, null.mode) == ("char", (1, 3), 0o666)
