"""verify_image over a real layout: the good image, then each way to break it."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.integration.attest.conftest import SignedImage, build_signed_image, make_key
from zerodrift.errors import ConfigError, IntegrityError
from zerodrift.oci.descriptor import Descriptor
from zerodrift.oci.layout import Layout
from zerodrift.protect.attest import list_attestations, sign_image
from zerodrift.protect.provenance import HARDENING, SLSA_PROVENANCE
from zerodrift.protect.verify import (
    ImageVerificationError,
    VerifyReport,
    git_commit_exists,
    verify_image,
)


def _verify(image: SignedImage, **kw: object) -> VerifyReport:
    options: dict[str, object] = {
        "allowed_keys": [image.key.public],
        "known_keys": [image.key.public],
        "commit_exists": git_commit_exists(image.repo),
    }
    options.update(kw)
    return verify_image(image.layout, "web", **options)  # type: ignore[arg-type]


def _fails(image: SignedImage, step: int, reference: str, **kw: object) -> str:
    with pytest.raises(ImageVerificationError) as info:
        _verify(image, **kw)
    assert (info.value.step, info.value.reference) == (step, reference)
    return info.value.message


def test_a_good_image_verifies(signed_image: SignedImage) -> None:
    report = _verify(signed_image)
    assert report.digest == signed_image.image.digest
    assert [s.number for s in report.steps] == [1, 2, 3, 4, 5]
    assert report.commit == signed_image.commit
    assert report.signers == {
        "https://slsa.dev/provenance/v1": ["project"],
        "https://cyclonedx.org/bom": ["project"],
        "https://zerodrift.dev/golden-manifest/v1": ["project"],
    }
    assert report.to_dict()["verified"] is True


def test_the_hardening_report_is_attested_too(signed_image: SignedImage) -> None:
    found = {
        a.predicate_type: a
        for a in list_attestations(signed_image.layout, signed_image.image)
    }
    statement = json.loads(base64.b64decode(found[HARDENING].envelope["payload"]))
    assert statement["predicate"]["checkedOn"] == "2026-01-01"
    assert statement["predicate"]["passed"] is True
    assert statement["subject"][0]["digest"]["sha256"] == (
        signed_image.image.digest.removeprefix("sha256:")
    )


def test_by_digest_too(signed_image: SignedImage) -> None:
    report = verify_image(
        signed_image.layout,
        signed_image.image.digest,
        allowed_keys=[signed_image.key.public],
        commit_exists=git_commit_exists(signed_image.repo),
    )
    assert report.digest == signed_image.image.digest


def _layer_path(image: SignedImage) -> Path:
    manifest = image.layout.read_json(image.image)
    layer = Descriptor.from_dict(manifest["layers"][0])
    return image.layout.blob_path(layer.digest)


def test_one_flipped_bit_in_a_layer_fails_step_1(signed_image: SignedImage) -> None:
    path = _layer_path(signed_image)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    message = _fails(signed_image, 1, "blob-digest-mismatch")
    assert "corrupt" in message


def test_a_missing_blob_fails_step_1(signed_image: SignedImage) -> None:
    _layer_path(signed_image).unlink()
    assert "missing" in _fails(signed_image, 1, "blob-missing")


def test_a_truncated_layout_is_refused(signed_image: SignedImage) -> None:
    (signed_image.layout.path / "index.json").write_text('{"schemaVersion": 2, "ma')
    with pytest.raises(IntegrityError) as info:
        _verify(signed_image)
    assert info.value.reference == "layout-truncated"
    (signed_image.layout.path / "oci-layout").unlink()
    with pytest.raises(IntegrityError):
        Layout.open(signed_image.layout.path)


def test_an_untrusted_key_fails_step_2(
    signed_image: SignedImage, tmp_path: Path
) -> None:
    stranger = make_key(tmp_path, "stranger")
    message = _fails(
        signed_image,
        2,
        "signature-untrusted",
        allowed_keys=[stranger.public],
        known_keys=[stranger.public],
    )
    assert "untrusted key" in message


def test_the_wrong_key_for_the_environment_fails_step_2(
    signed_image: SignedImage, tmp_path: Path
) -> None:
    release = make_key(tmp_path, "release")
    message = _fails(
        signed_image,
        2,
        "signature-wrong-environment",
        allowed_keys=[release.public],
        known_keys=[release.public, signed_image.key.public],
        environment="prod",
    )
    assert "'project'" in message
    assert "'prod'" in message
    # Countersigning with the release key makes the image acceptable for prod.
    sign_image(signed_image.layout, "web", release.signer)
    report = _verify(
        signed_image,
        allowed_keys=[release.public],
        known_keys=[release.public, signed_image.key.public],
    )
    assert all(v == ["release"] for v in report.signers.values())


def test_a_tampered_payload_fails_step_2(signed_image: SignedImage) -> None:
    layout = signed_image.layout
    provenance = next(
        a
        for a in list_attestations(layout, signed_image.image)
        if a.predicate_type == SLSA_PROVENANCE
    )
    statement = json.loads(base64.b64decode(provenance.envelope["payload"]))
    statement["predicate"]["buildDefinition"]["externalParameters"]["commit"] = "0" * 40
    forged = dict(provenance.envelope)
    forged["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    # Rewrite the envelope blob and the artifact manifest around it, as an
    # attacker with write access to the store would (all digests consistent).
    manifest = layout.read_json(provenance.descriptor)
    blob = layout.write_blob(
        json.dumps(forged).encode(), manifest["layers"][0]["mediaType"]
    )
    manifest["layers"][0].update(digest=blob.digest, size=blob.size)
    layout.blob_path(provenance.descriptor.digest).unlink()
    index = json.loads((layout.path / "index.json").read_text())
    index["manifests"] = [
        m for m in index["manifests"] if m["digest"] != provenance.descriptor.digest
    ]
    (layout.path / "index.json").write_text(json.dumps(index))
    layout.add_manifest(manifest)
    assert "tampered" in _fails(signed_image, 2, "signature-invalid")


def test_an_unknown_commit_fails_step_3(signed_image: SignedImage) -> None:
    _fails(signed_image, 3, "provenance-commit-unknown", commit_exists=lambda _: False)


def test_a_golden_manifest_that_disagrees_with_the_layers_fails_step_4(
    tmp_path: Path,
) -> None:
    key = make_key(tmp_path / "keys", "project")
    signed = build_signed_image(tmp_path / "lying", key, drop_golden_entry=True)
    message = _fails(signed, 4, "golden-manifest-layers-mismatch")
    assert "layers give Merkle root" in message


def test_an_unsigned_image_fails_step_2(tmp_path: Path) -> None:
    key = make_key(tmp_path / "keys", "project")
    unsigned = build_signed_image(tmp_path / "unsigned", key, sign=False)
    message = _fails(unsigned, 2, "attestation-missing")
    assert "slsa.dev/provenance" in message


def test_a_zstd_layer_is_recomputed_too(tmp_path: Path) -> None:
    key = make_key(tmp_path / "keys", "project")
    signed = build_signed_image(tmp_path / "zstd", key, zstd=True)
    assert _verify(signed).merkle_root is not None


def test_an_unknown_image_is_a_config_error(signed_image: SignedImage) -> None:
    with pytest.raises(ConfigError):
        verify_image(
            signed_image.layout,
            "nope",
            allowed_keys=[signed_image.key.public],
            commit_exists=lambda _: True,
        )
