"""The OCI layout store: atomic content-addressed blobs, tags, referrers, checks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from zerodrift.errors import ConfigError, IntegrityError
from zerodrift.oci import (
    MEDIA_TYPE_LAYER,
    MEDIA_TYPE_MANIFEST,
    Layout,
    digest_bytes,
)

SBOM_TYPE = "application/vnd.example.sbom+json"
SIG_TYPE = "application/vnd.example.sig+json"


def _image(layout: Layout, payload: bytes = b"layer", tag: str = "web"):  # type: ignore[no-untyped-def]
    layer = layout.write_blob(payload, MEDIA_TYPE_LAYER)
    config = {"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": [layer.digest]}}  # fmt: skip
    return layout.add_image(config, [layer], tag=tag)


def _flip_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))


def test_created_layout_has_the_spec_files(tmp_path: Path) -> None:
    layout = Layout.create(tmp_path / "store")

    marker = json.loads((layout.path / "oci-layout").read_bytes())
    index = json.loads((layout.path / "index.json").read_bytes())
    assert marker == {"imageLayoutVersion": "1.0.0"}
    assert index["schemaVersion"] == 2
    assert index["manifests"] == []
    assert Layout.open(layout.path).manifests() == []


def test_blob_is_stored_under_its_digest_and_read_back(tmp_path: Path) -> None:
    layout = Layout.create(tmp_path / "store")

    desc = layout.write_blob(b"hello", MEDIA_TYPE_LAYER)

    assert desc.digest == digest_bytes(b"hello")
    assert desc.size == 5
    assert layout.blob_path(desc.digest).read_bytes() == b"hello"
    assert layout.read_blob(desc) == b"hello"
    assert not list((layout.path / ".ingest").iterdir())


def test_flipped_bit_in_a_blob_is_an_integrity_error(tmp_path: Path) -> None:
    layout = Layout.create(tmp_path / "store")
    desc = layout.write_blob(b"some layer content", MEDIA_TYPE_LAYER)
    _flip_bit(layout.blob_path(desc.digest))

    with pytest.raises(IntegrityError) as info:
        layout.read_blob(desc)
    assert info.value.reference == "blob-digest-mismatch"
    assert desc.digest in info.value.message


def test_expected_digest_mismatch_stores_nothing(tmp_path: Path) -> None:
    layout = Layout.create(tmp_path / "store")
    wrong = digest_bytes(b"other")

    with (
        pytest.raises(IntegrityError),
        layout.blob_writer(MEDIA_TYPE_LAYER, expected_digest=wrong) as writer,
    ):
        writer.write(b"content")

    assert not layout.has_blob(digest_bytes(b"content"))
    assert not layout.has_blob(wrong)
    assert not list((layout.path / ".ingest").iterdir())


def test_failed_writer_leaves_no_blob(tmp_path: Path) -> None:
    layout = Layout.create(tmp_path / "store")

    def killed_mid_write() -> None:
        with layout.blob_writer(MEDIA_TYPE_LAYER) as writer:
            writer.write(b"partial")
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        killed_mid_write()

    assert list((layout.path / "blobs" / "sha256").iterdir()) == []


def test_image_is_tagged_and_resolved_by_tag_and_digest(tmp_path: Path) -> None:
    layout = Layout.create(tmp_path / "store")

    image = _image(layout)

    assert layout.resolve("web") == image
    assert layout.resolve(image.digest).digest == image.digest
    assert layout.tags() == {"web": image}
    assert image.media_type == MEDIA_TYPE_MANIFEST
    assert layout.read_json(image)["layers"][0]["mediaType"] == MEDIA_TYPE_LAYER


def test_retagging_moves_the_tag(tmp_path: Path) -> None:
    layout = Layout.create(tmp_path / "store")
    first = _image(layout, b"one")
    second = _image(layout, b"two")

    assert first.digest != second.digest
    assert layout.tags() == {"web": second}
    layout.untag("web")
    assert layout.tags() == {}


def test_unknown_reference_names_known_tags(tmp_path: Path) -> None:
    layout = Layout.create(tmp_path / "store")
    _image(layout)

    with pytest.raises(ConfigError) as info:
        layout.resolve("nope")
    assert info.value.reference == "image-not-found"
    assert "web" in (info.value.hint or "")


def test_manifest_with_missing_blob_is_refused_and_not_tagged(tmp_path: Path) -> None:
    layout = Layout.create(tmp_path / "store")
    layer = layout.write_blob(b"layer", MEDIA_TYPE_LAYER)
    layout.blob_path(layer.digest).unlink()

    with pytest.raises(IntegrityError) as info:
        layout.add_image({"os": "linux"}, [layer], tag="web")
    assert info.value.reference == "blob-missing"
    assert layout.tags() == {}


def test_referrers_are_found_by_subject_and_type(tmp_path: Path) -> None:
    layout = Layout.create(tmp_path / "store")
    image = _image(layout)
    other = _image(layout, b"other", tag="api")

    sbom = layout.add_artifact(image, SBOM_TYPE, [(b"{}", "application/json")])
    sig = layout.add_artifact(image, SIG_TYPE, [(b"sig", "application/octet-stream")])
    layout.add_artifact(other, SBOM_TYPE, [(b"[]", "application/json")])

    assert set(layout.referrers(image.digest)) == {sbom, sig}
    assert layout.referrers(image.digest, artifact_type=SBOM_TYPE) == [sbom]
    assert sbom.artifact_type == SBOM_TYPE
    assert layout.read_json(sbom)["subject"]["digest"] == image.digest
    assert layout.tags() == {"web": image, "api": other}


def test_artifact_for_a_missing_subject_is_refused(tmp_path: Path) -> None:
    layout = Layout.create(tmp_path / "store")
    image = _image(layout)
    layout.blob_path(image.digest).unlink()

    with pytest.raises(IntegrityError):
        layout.add_artifact(image, SBOM_TYPE, [(b"{}", "application/json")])


def test_check_passes_on_a_good_layout(tmp_path: Path) -> None:
    layout = Layout.create(tmp_path / "store")
    image = _image(layout)
    layout.add_artifact(image, SBOM_TYPE, [(b'{"bom":1}', "application/json")])

    report = layout.check()

    # layer, config, image manifest, empty config, sbom payload, sbom manifest
    assert report.blobs == 6
    assert report.manifests == 2
    assert report.tags == ("web",)
    assert layout.check("web").blobs == 3


def test_check_refuses_a_flipped_bit_anywhere(tmp_path: Path) -> None:
    layout = Layout.create(tmp_path / "store")
    image = _image(layout)
    config_digest = layout.read_json(image)["config"]["digest"]
    _flip_bit(layout.blob_path(config_digest))

    with pytest.raises(IntegrityError) as info:
        layout.check()
    assert config_digest in info.value.message


def test_check_refuses_a_missing_blob(tmp_path: Path) -> None:
    layout = Layout.create(tmp_path / "store")
    image = _image(layout)
    layer_digest = layout.read_json(image)["layers"][0]["digest"]
    layout.blob_path(layer_digest).unlink()

    with pytest.raises(IntegrityError) as info:
        layout.check("web")
    assert info.value.reference == "blob-missing"


@pytest.mark.parametrize("victim", ["oci-layout", "index.json"])
def test_truncated_layout_is_refused(tmp_path: Path, victim: str) -> None:
    layout = Layout.create(tmp_path / "store")
    _image(layout)
    path = layout.path / victim
    path.write_bytes(path.read_bytes()[:10])

    with pytest.raises(IntegrityError) as info:
        Layout.open(layout.path).check()
    assert info.value.reference in {"layout-truncated", "layout-version"}


def test_layout_without_marker_is_refused(tmp_path: Path) -> None:
    layout = Layout.create(tmp_path / "store")
    (layout.path / "oci-layout").unlink()

    with pytest.raises(IntegrityError) as info:
        Layout.open(layout.path)
    assert info.value.reference == "layout-truncated"


def test_malformed_digest_cannot_escape_the_store(tmp_path: Path) -> None:
    layout = Layout.create(tmp_path / "store")

    with pytest.raises(IntegrityError) as info:
        layout.blob_path("sha256:../../etc/passwd")
    assert info.value.reference == "digest-malformed"


def test_raw_manifest_bytes_keep_their_digest(tmp_path: Path) -> None:
    layout = Layout.create(tmp_path / "store")
    layer = layout.write_blob(b"x", MEDIA_TYPE_LAYER)
    config = layout.write_blob(b"{}", "application/vnd.oci.image.config.v1+json")
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_MANIFEST,
            "config": config.to_dict(),
            "layers": [layer.to_dict()],
        },
        indent=3,
    ).encode()

    entry = layout.add_manifest(raw, tag="pulled")

    assert entry.digest == digest_bytes(raw)
    assert layout.read_blob(entry) == raw


def test_stale_partial_blobs_are_discarded_fresh_ones_kept(tmp_path: Path) -> None:
    layout = Layout.create(tmp_path / "store")
    ingest = layout.path / ".ingest"
    ingest.mkdir(exist_ok=True)
    (ingest / "blob-old").write_bytes(b"killed writer")
    (ingest / "blob-new").write_bytes(b"running writer")
    os.utime(ingest / "blob-old", (1, 1))

    assert layout.discard_stale_ingest() == 1
    assert [p.name for p in ingest.iterdir()] == ["blob-new"]
