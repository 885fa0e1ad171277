"""Throwaway signing keys for tests, made with zerodrift's own key functions."""

from __future__ import annotations

from pathlib import Path

from securesystemslib.signer import CryptoSigner

from zerodrift.protect.keys import (
    KeyAlgorithm,
    PublicKey,
    generate_private_key,
    load_public_key,
    load_signer,
    write_keypair,
)

PASSPHRASE = b"throwaway-test-passphrase"


def make_key(
    folder: Path, name: str = "project", algorithm: KeyAlgorithm = "ecdsa-p256"
) -> tuple[CryptoSigner, PublicKey]:
    """Write an encrypted key pair into ``folder``; return its signer and key."""
    private, public = folder / f"{name}.key", folder / f"{name}.pub"
    write_keypair(generate_private_key(algorithm), private, public, PASSPHRASE)
    return load_signer(private, PASSPHRASE), load_public_key(name, public)
