"""The image store as evidence: verified facts about built images.

:class:`StoreEvidence` answers the questions the CI gate asks
(:class:`zerodrift.gate.ImageEvidence`) from the OCI layout and the audit
trail. It reports only what verifies: a key counts as a signer only if its
signature over the envelope checks out, and a statement's content (commit,
hardening findings) is read only from envelopes that verified.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from zerodrift.detect.findings import Severity
from zerodrift.errors import VerificationError, ZerodriftError
from zerodrift.gate.evidence import HardeningFinding
from zerodrift.govern.audit import AuditTrail, RecordFilter
from zerodrift.oci.layout import Layout
from zerodrift.protect.attest import Attestation, list_attestations
from zerodrift.protect.dsse import verify_envelope
from zerodrift.protect.keys import PublicKey
from zerodrift.protect.provenance import (
    HARDENING,
    PAYLOAD_TYPE,
    SLSA_PROVENANCE,
    parse_statement,
    subject_digests,
)

__all__ = ["StoreEvidence"]

_SEVERITIES = {s.label: s for s in Severity}


@dataclass(frozen=True)
class _Verified:
    """The attestations of one digest whose signatures verified."""

    key_ids: frozenset[str]
    statements: dict[str, dict[str, Any]]


@dataclass
class StoreEvidence:
    """Verified facts about images in an OCI layout.

    Args:
        layout: The project's image store.
        keys: Every key the trust policy knows; per-environment rules are the
            gate's business, so any trusted signer is reported.
        audit: The audit trail, where ``zerodrift verify`` records each
            successful verification with its environment.
    """

    layout: Layout
    keys: Sequence[PublicKey]
    audit: AuditTrail
    _cache: dict[str, _Verified] = field(default_factory=dict)

    def digest(self, image: str) -> str | None:
        """The digest tagged with the recipe's name, or ``None`` if unbuilt."""
        descriptor = self.layout.tags().get(image)
        return descriptor.digest if descriptor is not None else None

    def signer_key_ids(self, digest: str) -> Collection[str]:
        """Key ids whose signatures over an attestation of ``digest`` verify."""
        return self._verified(digest).key_ids

    def attestation_types(self, digest: str) -> Collection[str]:
        """Predicate types of attestations of ``digest`` that verify."""
        return frozenset(self._verified(digest).statements)

    def provenance_commit(self, digest: str) -> str | None:
        """The spec commit a verified provenance of ``digest`` names."""
        statement = self._verified(digest).statements.get(SLSA_PROVENANCE)
        if statement is None:
            return None
        params = statement["predicate"]["buildDefinition"]["externalParameters"]
        commit = params.get("commit")
        return str(commit) if commit else None

    def verified_in(self, digest: str) -> Collection[str]:
        """Environments where ``digest`` passed verification.

        Both ``zerodrift verify --env E`` and every deploy to ``E`` (which
        verifies before it runs anything) record ``image.verified``; a deploy
        whose verification was switched off (a runtime test's
        ``UnsafeNoVerification``) does not count.
        """
        environments = set()
        for record in self.audit.records(RecordFilter(action="image.verified")):
            details = record.details
            if not record.subject.endswith("@" + digest):
                continue
            if str(details.get("verifier", "")).startswith("Unsafe"):
                continue
            if details.get("environment"):
                environments.add(str(details["environment"]))
        return environments

    def hardening_findings(self, digest: str) -> Sequence[HardeningFinding]:
        """Unwaived findings of the signed hardening report of ``digest``."""
        statement = self._verified(digest).statements.get(HARDENING)
        if statement is None:
            return ()
        return tuple(
            HardeningFinding(
                check=str(item["check"]),
                severity=_SEVERITIES.get(str(item["severity"]), Severity.HIGH),
                message=str(item.get("message", "")),
                path=item.get("path"),
            )
            for item in statement["predicate"].get("findings", [])
            if not item.get("waived")
        )

    def statement(self, digest: str, predicate_type: str) -> dict[str, Any] | None:
        """The verified in-toto statement of one type about ``digest``, if any."""
        return self._verified(digest).statements.get(predicate_type)

    def _verified(self, digest: str) -> _Verified:
        cached = self._cache.get(digest)
        if cached is None:
            cached = self._cache[digest] = self._verify_all(digest)
        return cached

    def _verify_all(self, digest: str) -> _Verified:
        try:
            attestations = list_attestations(self.layout, self.layout.resolve(digest))
        except ZerodriftError:
            return _Verified(frozenset(), {})
        key_ids: set[str] = set()
        statements: dict[str, dict[str, Any]] = {}
        for attestation in attestations:
            signers = self._signers(attestation)
            if not signers:
                continue
            statement = _statement_about(attestation, digest)
            if statement is not None:
                key_ids |= signers
                statements.setdefault(statement["predicateType"], statement)
        return _Verified(frozenset(key_ids), statements)

    def _signers(self, attestation: Attestation) -> set[str]:
        """The trusted keys whose signature over the envelope verifies."""
        good = set()
        for key in self.keys:
            try:
                verify_envelope(attestation.envelope, [key], payload_type=PAYLOAD_TYPE)
            except VerificationError:
                continue
            good.add(key.keyid)
        return good


def _statement_about(attestation: Attestation, digest: str) -> dict[str, Any] | None:
    """The envelope's statement if it is well formed and about ``digest``."""
    try:
        payload = base64.b64decode(attestation.envelope["payload"])
        statement = parse_statement(payload)
    except (KeyError, ValueError, VerificationError, json.JSONDecodeError):
        return None
    return statement if digest in subject_digests(statement) else None


class EmptyStore:
    """Evidence for a project that has built nothing yet: no image exists."""

    def digest(self, image: str) -> str | None:
        """No image is built."""
        del image
        return None

    def signer_key_ids(self, digest: str) -> Collection[str]:
        """Nothing is signed."""
        del digest
        return frozenset()

    def attestation_types(self, digest: str) -> Collection[str]:
        """Nothing is attested."""
        del digest
        return frozenset()

    def provenance_commit(self, digest: str) -> str | None:
        """No provenance exists."""
        del digest
        return None

    def verified_in(self, digest: str) -> Collection[str]:
        """Nothing was verified."""
        del digest
        return frozenset()

    def hardening_findings(self, digest: str) -> Sequence[HardeningFinding]:
        """No build, no hardening report."""
        del digest
        return ()
