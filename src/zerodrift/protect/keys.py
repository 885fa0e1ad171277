"""Signing keys: generation, encrypted storage, loading and key ids.

Private keys are PKCS#8 PEM encrypted with the best scheme ``cryptography``
offers, written atomically with mode 0600, and never exist unencrypted on
disk. Public keys are SubjectPublicKeyInfo PEM files meant to be committed to
the repository, where the trust policy names them.

A key id is the SHA-256 of the DER-encoded public key: stable across tools
and derivable from the public key alone.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from securesystemslib.signer import CryptoSigner, SSlibKey

from zerodrift._internal.atomic import write_atomic
from zerodrift.errors import ConfigError

__all__ = [
    "PASSPHRASE_ENV",
    "KeyAlgorithm",
    "PublicKey",
    "check_passphrase",
    "generate_private_key",
    "key_id",
    "load_private_key",
    "load_public_key",
    "load_signer",
    "read_passphrase",
    "write_keypair",
]

PASSPHRASE_ENV = "ZERODRIFT_KEY_PASSPHRASE"  # noqa: S105 - a variable name
KeyAlgorithm = Literal["ecdsa-p256", "ed25519"]
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
_MIN_PASSPHRASE = 8


@dataclass(frozen=True)
class PublicKey:
    """A trusted public key with the name the spec gives it."""

    name: str
    keyid: str
    key: SSlibKey


def generate_private_key(algorithm: KeyAlgorithm = "ecdsa-p256") -> PrivateKey:
    """Create a new private key (ECDSA P-256 by default, or Ed25519)."""
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def key_id(public_pem: bytes) -> str:
    """Return the key id (hex SHA-256 of the DER public key) of a PEM key.

    Raises:
        ConfigError: ``public_pem`` is not a PEM public key.
    """
    try:
        key = serialization.load_pem_public_key(public_pem)
    except ValueError as exc:
        raise ConfigError("not a PEM public key", reference="key-invalid") from exc
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def check_passphrase(passphrase: bytes) -> None:
    """Refuse a passphrase too weak to protect a signing key.

    Raises:
        ConfigError: The passphrase is shorter than the minimum.
    """
    if len(passphrase) < _MIN_PASSPHRASE:
        raise ConfigError(
            f"the key passphrase must have at least {_MIN_PASSPHRASE} characters",
            hint=f"set {PASSPHRASE_ENV} or answer the prompt with a longer one",
            reference="key-passphrase-weak",
        )


def write_keypair(
    private_key: PrivateKey, private_path: Path, public_path: Path, passphrase: bytes
) -> str:
    """Write an encrypted private key and its public key; return the key id.

    Raises:
        ConfigError: The passphrase is too short.
        OperationalError: A file could not be written.
    """
    check_passphrase(passphrase)
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    private_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    had_private = private_path.exists()
    write_atomic(private_path, private_pem, mode=0o600)
    try:
        write_atomic(public_path, public_pem, mode=0o644)
    except BaseException:
        # Never leave a private key whose public half was not written.
        if not had_private:
            private_path.unlink(missing_ok=True)
        raise
    return key_id(public_pem)


def load_public_key(name: str, path: Path) -> PublicKey:
    """Load a trusted public key from a PEM file.

    Raises:
        ConfigError: The file is missing or not a supported public key.
    """
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read public key {name!r} at {path}: {exc.strerror}",
            hint="check the path under 'trust.keys' in the spec",
            reference="key-missing",
        ) from exc
    keyid = key_id(pem)
    crypto_key = serialization.load_pem_public_key(pem)
    if not isinstance(
        crypto_key, (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)
    ):
        raise ConfigError(
            f"key {name!r} at {path} is neither ECDSA nor Ed25519",
            reference="key-invalid",
        )
    return PublicKey(name, keyid, SSlibKey.from_crypto(crypto_key, keyid=keyid))


def load_private_key(path: Path, passphrase: bytes) -> PrivateKey:
    """Decrypt the ECDSA or Ed25519 private key at ``path``.

    Raises:
        ConfigError: The key file is missing, the passphrase is wrong, or the
            key is of another kind.
    """
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read private key {path}: {exc.strerror}",
            hint="create one with 'zerodrift keygen'",
            reference="key-missing",
        ) from exc
    try:
        private_key = serialization.load_pem_private_key(pem, password=passphrase)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"cannot decrypt {path}: wrong passphrase or not a private key",
            hint=f"check {PASSPHRASE_ENV}",
            reference="key-passphrase-wrong",
        ) from exc
    if not isinstance(
        private_key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)
    ):
        raise ConfigError(
            f"{path} is neither an ECDSA nor an Ed25519 key", reference="key-invalid"
        )
    return private_key


def load_signer(path: Path, passphrase: bytes) -> CryptoSigner:
    """Decrypt the private key at ``path`` into a signer.

    Raises:
        ConfigError: The key file is missing, or the passphrase is wrong.
    """
    private_key = load_private_key(path, passphrase)
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public = SSlibKey.from_crypto(private_key.public_key(), keyid=key_id(public_pem))
    return CryptoSigner(private_key, public)


def read_passphrase(
    *, confirm: bool = False, purpose: str = "the project key"
) -> bytes:
    """Take the key passphrase from the environment, or prompt on a terminal.

    Raises:
        ConfigError: No passphrase is set and there is no terminal to ask, or
            the two entries of a confirmed prompt differ.
    """
    value = os.environ.get(PASSPHRASE_ENV)
    if value:
        return value.encode()
    if not sys.stdin.isatty():
        raise ConfigError(
            f"a passphrase for {purpose} is needed and there is no terminal to ask",
            hint=f"set {PASSPHRASE_ENV}",
            reference="key-passphrase-missing",
        )
    first = getpass.getpass(f"Passphrase for {purpose}: ")
    if confirm and getpass.getpass("Repeat the passphrase: ") != first:
        raise ConfigError(
            "the passphrases do not match", reference="key-passphrase-mismatch"
        )
    return first.encode()
