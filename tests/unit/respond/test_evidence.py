"""The content-addressed evidence store and signed archives."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from zerodrift.errors import IntegrityError, VerificationError
from zerodrift.protect.dsse import sign_payload, verify_envelope
from zerodrift.protect.keys import (
    PublicKey,
    generate_private_key,
    load_public_key,
    load_signer,
    write_keypair,
)
from zerodrift.respond.evidence import (
    MANIFEST_PAYLOAD_TYPE,
    EvidenceStore,
    export_archive,
    files_archive,
    verify_archive,
)


def test_blobs_are_content_addressed_read_only_and_checked(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "evidence")
    digest = store.put(b"inspect")
    assert digest == store.put(b"inspect")
    path = store.path(digest)
    assert path.stat().st_mode & 0o777 == 0o444
    assert store.get(digest) == b"inspect"
    path.chmod(0o644)
    path.write_bytes(b"inspecT")
    with pytest.raises(IntegrityError, match="altered"):
        store.get(digest)
    with pytest.raises(IntegrityError, match="missing"):
        store.get("sha256:" + "0" * 64)
    with pytest.raises(IntegrityError, match="not a sha256"):
        store.path("md5:abc")


def test_files_archive_is_deterministic() -> None:
    files = [("/tmp/b", b"2", 0o755), ("/tmp/a", b"1", 0o644)]
    first = files_archive(files)
    assert first == files_archive(list(reversed(files)))
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        assert [m.name for m in tar.getmembers()] == ["tmp/a", "tmp/b"]
        assert tar.getmember("tmp/b").mode == 0o755


def keypair(folder: Path) -> tuple[Any, PublicKey]:
    """A fresh key pair written and loaded the way the project's key is."""
    folder.mkdir(parents=True, exist_ok=True)
    write_keypair(
        generate_private_key(), folder / "k.key", folder / "k.pub", b"passphrase-1"
    )
    return (
        load_signer(folder / "k.key", b"passphrase-1"),
        load_public_key("k", folder / "k.pub"),
    )


def _signed_archive(tmp_path: Path) -> tuple[Path, Any, dict[str, Any]]:
    signer, public = keypair(tmp_path / "keys")
    store = EvidenceStore(tmp_path / "evidence")
    manifest = store.put_manifest("inc1", {"a.json": b"{}", "files.tar": b"tar"})
    envelope = sign_payload(store.get(manifest), MANIFEST_PAYLOAD_TYPE, signer)
    out = tmp_path / "e.tar"
    assert export_archive(store, manifest, envelope, out) == 2

    def check(env: dict[str, Any]) -> bytes:
        return verify_envelope(env, [public], payload_type=MANIFEST_PAYLOAD_TYPE)

    return out, check, json.loads(store.get(manifest))


def test_archive_verifies_and_tampering_is_caught(tmp_path: Path) -> None:
    out, check, manifest = _signed_archive(tmp_path)
    assert verify_archive(out, check) == manifest
    members = {}
    with tarfile.open(out) as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            assert handle is not None
            members[member.name] = handle.read()
    blob = "blobs/sha256/" + manifest["items"]["files.tar"]["digest"][7:]
    cases = {
        "item": {**members, blob: b"TAR"},
        "manifest": {**members, "manifest.json": members["manifest.json"] + b" "},
        "unsigned": {k: v for k, v in members.items() if k != "manifest.dsse.json"},
    }
    for name, content in cases.items():
        bad = tmp_path / f"{name}.tar"
        with tarfile.open(bad, "w") as tar:
            for member_name, data in content.items():
                info = tarfile.TarInfo(member_name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        with pytest.raises(VerificationError):
            verify_archive(bad, check)
    (tmp_path / "junk.tar").write_bytes(b"not a tar")
    with pytest.raises(VerificationError, match="cannot read"):
        verify_archive(tmp_path / "junk.tar", check)


def test_archive_signed_by_an_untrusted_key_fails(tmp_path: Path) -> None:
    out, _check, _manifest = _signed_archive(tmp_path)
    _other_signer, other_public = keypair(tmp_path / "other")

    def untrusted(env: dict[str, Any]) -> bytes:
        return verify_envelope(env, [other_public], payload_type=MANIFEST_PAYLOAD_TYPE)

    with pytest.raises(VerificationError, match="trusted"):
        verify_archive(out, untrusted)
