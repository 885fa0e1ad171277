"""Image content verified against the signed golden manifest of the example.

The example fleet's images are built and signed by ``zerodrift build``; their
layers are unpacked here into one folder each (as podman's overlay storage
holds them) and read back by the same reader ``zerodrift check`` uses. The
podman path itself is tested in tests/integration/runtime/detect.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.example import Example
from zerodrift.detect.content import LayerReader, trusted_golden
from zerodrift.detect.manifest import diff
from zerodrift.errors import VerificationError
from zerodrift.oci.layout import Layout
from zerodrift.protect.keys import load_public_key
from zerodrift.protect.rootfs import decompressed
from zerodrift.protect.verify import TrustPolicyVerifier, git_commit_exists
from zerodrift.runtime.images import (
    RefuseUnverified,
    ResolvedImage,
    UnsafeNoVerification,
)

pytestmark = pytest.mark.slow


def _unpack(layout: Layout, digest: str, into: Path) -> list[str]:
    """Unpack each layer of an image into its own folder, bottom first."""
    folders = []
    for index, item in enumerate(layout.read_json(digest)["layers"]):
        folder = into / f"layer{index}"
        folder.mkdir(parents=True)
        with layout.open_blob(item["digest"]) as reader:
            stream: Any = reader  # tarfile only needs its read()
            plain = decompressed(stream, item["mediaType"], "layer")
            with tarfile.open(fileobj=plain, mode="r|*") as archive:
                # Our own signed image, unpacked as podman stores it.
                archive.extractall(  # noqa: S202
                    folder, numeric_owner=True, filter="fully_trusted"
                )
        folders.append(str(folder))
    return folders


def test_signed_golden_manifest_is_the_baseline_and_a_changed_file_is_found(
    example: Example, tmp_path: Path
) -> None:
    layout = Layout.open(example.root / ".zerodrift" / "store")
    key = load_public_key("project", example.root / "keys" / "project.pub")
    verifier = TrustPolicyVerifier(
        layout=layout,
        keys_for=lambda _env: [key],
        known_keys=[key],
        commit_exists=git_commit_exists(example.root),
    )
    image = ResolvedImage("web", example.digests["web"])
    manifest, signed = trusted_golden(layout, image, verifier, "dev")
    assert signed
    assert manifest.merkle_root == verifier.golden_root(image, "dev")

    folders = _unpack(layout, image.digest, tmp_path)
    reader = LayerReader()
    assert diff(manifest, reader.tree(folders, manifest)).is_empty
    assert reader.files_hashed > 0

    victim = next(e.path for e in manifest.entries if e.type == "file" and e.size > 0)
    target = next(
        Path(f + victim) for f in reversed(folders) if Path(f + victim).exists()
    )
    target.write_bytes(b"tampered")
    (Path(folders[0]) / "etc" / "implant").write_text("x")
    found = diff(manifest, LayerReader().tree(folders, manifest))
    assert [c.path for c in found.changed] == [victim]
    assert set(found.changed[0].attributes) >= {"sha256"}
    assert [e.path for e in found.added] == ["/etc/implant"]


def test_golden_manifest_is_not_trusted_without_a_trusted_signature(
    example: Example,
) -> None:
    layout = Layout.open(example.root / ".zerodrift" / "store")
    image = ResolvedImage("web", example.digests["web"])
    untrusted = TrustPolicyVerifier(
        layout=layout,
        keys_for=lambda _env: [],
        known_keys=[],
        commit_exists=git_commit_exists(example.root),
    )
    with pytest.raises(VerificationError):
        trusted_golden(layout, image, untrusted, "dev")
    with pytest.raises(VerificationError, match="no image verifier"):
        trusted_golden(layout, image, RefuseUnverified(), "dev")
    manifest, signed = trusted_golden(
        layout, image, UnsafeNoVerification("test of the unsafe path"), "dev"
    )
    assert not signed
    assert manifest.image == "web"
