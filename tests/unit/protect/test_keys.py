"""Signing keys: encrypted at rest, loadable only with the passphrase."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.support.keys import PASSPHRASE, make_key
from zerodrift.errors import ConfigError, VerificationError
from zerodrift.protect.dsse import sign_payload, verify_envelope
from zerodrift.protect.keys import (
    generate_private_key,
    key_id,
    load_public_key,
    load_signer,
    write_keypair,
)


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "ed25519"])
def test_private_key_is_encrypted_and_private(tmp_path: Path, algorithm: str) -> None:
    private, public = tmp_path / "keys" / "k.key", tmp_path / "pub" / "k.pub"
    keyid = write_keypair(
        generate_private_key(algorithm),  # type: ignore[arg-type]
        private,
        public,
        PASSPHRASE,
    )
    pem = private.read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert PASSPHRASE not in pem
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert keyid == key_id(public.read_bytes())
    assert {p.name for p in tmp_path.rglob("*") if p.is_file()} == {"k.key", "k.pub"}


def test_key_id_is_sha256_of_the_der_public_key(tmp_path: Path) -> None:
    import hashlib

    from cryptography.hazmat.primitives import serialization

    _, public = make_key(tmp_path)
    pem = (tmp_path / "project.pub").read_bytes()
    der = serialization.load_pem_public_key(pem).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert public.keyid == hashlib.sha256(der).hexdigest()


def test_wrong_passphrase(tmp_path: Path) -> None:
    make_key(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_signer(tmp_path / "project.key", b"not the passphrase")
    assert caught.value.reference == "key-passphrase-wrong"
    assert "not the passphrase" not in caught.value.diagnostics()


def test_weak_passphrase_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        write_keypair(
            generate_private_key(), tmp_path / "k.key", tmp_path / "k.pub", b"short"
        )
    assert caught.value.reference == "key-passphrase-weak"
    assert list(tmp_path.iterdir()) == []


def test_missing_private_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_signer(tmp_path / "absent.key", PASSPHRASE)
    assert caught.value.reference == "key-missing"
    assert "keygen" in (caught.value.hint or "")


def test_public_key_that_is_not_a_key(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pub"
    bogus.write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ConfigError) as caught:
        load_public_key("bogus", bogus)
    assert caught.value.reference == "key-invalid"


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "ed25519"])
def test_envelopes_verify_with_either_algorithm(tmp_path: Path, algorithm: str) -> None:
    signer, public = make_key(tmp_path, algorithm=algorithm)  # type: ignore[arg-type]
    envelope = sign_payload(b'{"x":1}', "application/vnd.test+json", signer)
    assert (
        verify_envelope(envelope, [public], payload_type="application/vnd.test+json")
        == b'{"x":1}'
    )


def test_envelope_signed_by_another_key_is_refused(tmp_path: Path) -> None:
    _, trusted = make_key(tmp_path, "trusted")
    intruder, _ = make_key(tmp_path, "intruder")
    envelope = sign_payload(b"{}", "application/vnd.test+json", intruder)
    with pytest.raises(VerificationError) as caught:
        verify_envelope(envelope, [trusted], payload_type="application/vnd.test+json")
    assert caught.value.reference == "signature-untrusted"


def test_envelope_payload_type_cannot_be_swapped(tmp_path: Path) -> None:
    signer, public = make_key(tmp_path)
    envelope = sign_payload(b"{}", "application/vnd.a+json", signer)
    with pytest.raises(VerificationError) as caught:
        verify_envelope(envelope, [public], payload_type="application/vnd.b+json")
    assert caught.value.reference == "envelope-wrong-type"
    envelope["payloadType"] = "application/vnd.b+json"
    with pytest.raises(VerificationError) as caught:
        verify_envelope(envelope, [public], payload_type="application/vnd.b+json")
    assert caught.value.reference == "signature-untrusted"


def test_tampered_payload_is_refused(tmp_path: Path) -> None:
    import base64

    signer, public = make_key(tmp_path)
    envelope = sign_payload(b'{"seq":5}', "application/vnd.a+json", signer)
    envelope["payload"] = base64.b64encode(b'{"seq":6}').decode()
    with pytest.raises(VerificationError):
        verify_envelope(envelope, [public], payload_type="application/vnd.a+json")


def test_verifying_leaves_the_envelope_unchanged(tmp_path: Path) -> None:
    import copy

    signer, public = make_key(tmp_path)
    envelope = sign_payload(b"{}", "application/vnd.a+json", signer)
    before = copy.deepcopy(envelope)
    for _ in range(2):
        verify_envelope(envelope, [public], payload_type="application/vnd.a+json")
    assert envelope == before
