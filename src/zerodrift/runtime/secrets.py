"""Secret values for nodes: read at run time, never stored by zerodrift.

A spec names where each secret comes from:

- ``env:VAR``: the environment of the ``zerodrift apply`` process;
- ``file:path``: a file (relative to the project root) kept out of git;
- ``sealed:path``: a file in the repository encrypted to the project's
  public key (ECDH P-256 + HKDF-SHA256 + AES-256-GCM), opened with the
  project's private key. ``zerodrift seal`` writes such files.

Values exist only in memory and in the runtime's secret store. Errors name
the secret and its source, never the value.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from zerodrift.errors import ConfigError, Location
from zerodrift.project import SPEC_FILE

__all__ = ["SEALED_FORMAT", "SecretResolver", "open_sealed", "seal"]

SEALED_FORMAT = "zerodrift-sealed-secret/v1"
_INFO = b"zerodrift sealed secret v1"


def _derive(shared: bytes, ephemeral_der: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=ephemeral_der, info=_INFO
    ).derive(shared)


def seal(public_pem: bytes, value: bytes) -> bytes:
    """Encrypt ``value`` to an ECDSA P-256 public key; return the sealed file.

    Raises:
        ConfigError: The key is not a P-256 public key.
    """
    recipient = serialization.load_pem_public_key(public_pem)
    if not isinstance(recipient, ec.EllipticCurvePublicKey) or not isinstance(
        recipient.curve, ec.SECP256R1
    ):
        raise ConfigError(
            "sealed secrets need an ECDSA P-256 project key",
            hint="create one with 'zerodrift keygen' (the default algorithm)",
            reference="seal-key-unsupported",
        )
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    ephemeral_der = ephemeral.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = _derive(ephemeral.exchange(ec.ECDH(), recipient), ephemeral_der)
    nonce = os.urandom(12)
    ciphertext = AESGCM(key).encrypt(nonce, value, SEALED_FORMAT.encode())
    document = {
        "format": SEALED_FORMAT,
        "ephemeral_key": base64.b64encode(ephemeral_der).decode(),
        "nonce": base64.b64encode(nonce).decode(),
        "ciphertext": base64.b64encode(ciphertext).decode(),
    }
    return (json.dumps(document, indent=2) + "\n").encode()


def open_sealed(private_key: ec.EllipticCurvePrivateKey, sealed: bytes) -> bytes:
    """Decrypt a sealed secret file.

    Raises:
        ValueError: The file is not a sealed secret or was not sealed to
            this key (or was modified).
    """
    try:
        document = json.loads(sealed)
        if document.get("format") != SEALED_FORMAT:
            raise ValueError("not a zerodrift sealed secret")
        ephemeral_der = base64.b64decode(document["ephemeral_key"])
        nonce = base64.b64decode(document["nonce"])
        ciphertext = base64.b64decode(document["ciphertext"])
        ephemeral = serialization.load_der_public_key(ephemeral_der)
        if not isinstance(ephemeral, ec.EllipticCurvePublicKey):
            raise ValueError("not a P-256 ephemeral key")
        key = _derive(private_key.exchange(ec.ECDH(), ephemeral), ephemeral_der)
        return AESGCM(key).decrypt(nonce, ciphertext, SEALED_FORMAT.encode())
    except (KeyError, TypeError, InvalidTag, json.JSONDecodeError) as exc:
        raise ValueError("sealed secret is corrupt or sealed to another key") from exc


class SecretResolver:
    """Reads secret values for one project.

    Args:
        root: The project root (``file:`` and ``sealed:`` paths are relative).
        environ: The process environment (``env:`` sources).
        private_key: Returns the project's private key, for ``sealed:``.
    """

    def __init__(
        self,
        root: Path,
        environ: dict[str, str],
        private_key: Callable[[], ec.EllipticCurvePrivateKey] | None = None,
    ) -> None:
        self.root = root
        self.environ = environ
        self._private_key = private_key
        self._key: ec.EllipticCurvePrivateKey | None = None

    def value(self, service: str, name: str, source: str) -> bytes:
        """Return the value of secret ``name`` of ``service``.

        Raises:
            ConfigError: The source is unset, unreadable or cannot be opened.
        """
        kind, _, where = source.partition(":")
        location = Location(SPEC_FILE, field=f"services.{service}.secrets.{name}")
        if kind == "env":
            value = self.environ.get(where)
            if value is None:
                raise ConfigError(
                    f"secret {name!r} of service {service!r}: environment "
                    f"variable {where} is not set",
                    hint=f"export {where} before running zerodrift",
                    location=location,
                    reference="secret-unavailable",
                )
            return value.encode()
        path = Path(where) if Path(where).is_absolute() else self.root / where
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"secret {name!r} of service {service!r}: cannot read {where}: "
                f"{exc.strerror}",
                location=location,
                reference="secret-unavailable",
            ) from exc
        if kind == "file":
            return data
        try:
            return open_sealed(self._load_key(), data)
        except ValueError as exc:
            raise ConfigError(
                f"secret {name!r} of service {service!r}: {exc}",
                hint="reseal it with 'zerodrift seal' for this project's key",
                location=location,
                reference="secret-unsealable",
            ) from exc

    def _load_key(self) -> ec.EllipticCurvePrivateKey:
        if self._key is None:
            if self._private_key is None:
                raise ValueError("no project key is available to open it")
            self._key = self._private_key()
        return self._key
