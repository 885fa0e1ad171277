"""Canonical JSON (RFC 8785) and the digests computed over it."""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` as RFC 8785 canonical JSON.

    Raises:
        ValueError: ``value`` holds something JSON cannot represent exactly
            (floats that are not finite, integers beyond 2**53, non-str keys).
    """
    try:
        return bytes(rfc8785.dumps(value))
    except rfc8785.CanonicalizationError as exc:
        raise ValueError(f"cannot canonicalise value: {exc}") from exc


def sha256_hex(data: bytes) -> str:
    """Return the lowercase hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def canonical_digest(value: Any) -> str:
    """Return ``sha256:<hex>`` over the canonical JSON form of ``value``."""
    return "sha256:" + sha256_hex(canonical_json(value))
