"""DSSE envelopes: how zerodrift signs anything it records or publishes.

Every signed object (audit checkpoints, attestations, baselines, evidence
manifests, reports) is a DSSE envelope whose payload type names what it
holds, so a signature over one kind can never be replayed as another.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Sequence
from typing import Any

from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError as SslibVerificationError
from securesystemslib.signer import Signer

from zerodrift.errors import VerificationError
from zerodrift.protect.keys import PublicKey

__all__ = [
    "decode_payload",
    "envelope_from_json",
    "envelope_to_json",
    "sign_payload",
    "verify_envelope",
]


def sign_payload(payload: bytes, payload_type: str, signer: Signer) -> dict[str, Any]:
    """Sign ``payload`` and return the DSSE envelope as a JSON-ready dict."""
    envelope = Envelope(payload=payload, payload_type=payload_type, signatures={})
    envelope.sign(signer)
    return dict(envelope.to_dict())


def envelope_to_json(envelope: dict[str, Any]) -> str:
    """Serialise an envelope compactly, with sorted keys."""
    return json.dumps(envelope, sort_keys=True, separators=(",", ":"))


def envelope_from_json(text: str | bytes) -> dict[str, Any]:
    """Parse a serialised envelope.

    Raises:
        VerificationError: The text is not a DSSE envelope.
    """
    try:
        data = json.loads(text)
        Envelope.from_dict(copy.deepcopy(dict(data)))
    except (ValueError, KeyError, TypeError) as exc:
        raise VerificationError(
            "not a DSSE envelope", reference="envelope-malformed"
        ) from exc
    return dict(data)


def verify_envelope(
    envelope: dict[str, Any],
    keys: Sequence[PublicKey],
    *,
    payload_type: str,
    threshold: int = 1,
) -> bytes:
    """Verify ``envelope`` against trusted ``keys``; return the payload.

    Raises:
        VerificationError: The payload type is wrong, or fewer than
            ``threshold`` trusted keys signed it.
    """
    try:
        # A deep copy: securesystemslib consumes the signature dicts it parses.
        parsed = Envelope.from_dict(copy.deepcopy(dict(envelope)))
    except (KeyError, TypeError, ValueError) as exc:
        raise VerificationError(
            "not a DSSE envelope", reference="envelope-malformed"
        ) from exc
    if parsed.payload_type != payload_type:
        raise VerificationError(
            f"envelope holds {parsed.payload_type!r}, expected {payload_type!r}",
            reference="envelope-wrong-type",
        )
    if not keys:
        raise VerificationError(
            "no trusted keys to verify against",
            hint="list public keys under 'trust.keys'",
            reference="no-trusted-keys",
        )
    try:
        parsed.verify([k.key for k in keys], threshold)
    except SslibVerificationError as exc:
        signers = ", ".join(sig.keyid[:12] for sig in parsed.signatures.values())
        raise VerificationError(
            f"signature not made by a trusted key (signed by: {signers or 'nobody'})",
            hint="the signer's public key must be listed in the trust policy",
            reference="signature-untrusted",
        ) from exc
    return bytes(parsed.payload)


def decode_payload(envelope: dict[str, Any]) -> bytes:
    """Return an envelope's payload WITHOUT verifying it (for display only)."""
    return base64.b64decode(envelope["payload"])
