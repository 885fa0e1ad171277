"""in-toto statements about a built image: provenance, SBOM, golden manifest.

Each statement is an in-toto Statement v1 whose subject is the image (its
name and manifest digest). Three predicates are produced:

- SLSA Provenance v1 (:data:`SLSA_PROVENANCE`): how the image was built,
  from which spec commit and recipe, and from which inputs;
- the CycloneDX SBOM (:data:`CYCLONEDX_BOM`), embedded as the predicate;
- the golden manifest (:data:`GOLDEN_MANIFEST`): its Merkle root and the
  digest of the manifest document stored next to the image;
- optionally, the hardening report (:data:`HARDENING`): every finding with
  its check, severity, CSF subcategory and waiver.

This module is pure: it builds and checks JSON documents. Signing happens in
:mod:`zerodrift.protect.attest`, checking against an image in
:mod:`zerodrift.protect.verify`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from zerodrift import __version__
from zerodrift._internal.canonical import canonical_json
from zerodrift.errors import VerificationError

__all__ = [
    "BUILDER_ID",
    "BUILD_TYPE",
    "CYCLONEDX_BOM",
    "GOLDEN_MANIFEST",
    "HARDENING",
    "PAYLOAD_TYPE",
    "SLSA_PROVENANCE",
    "STATEMENT_TYPE",
    "ResolvedDependency",
    "Subject",
    "encode_statement",
    "golden_manifest_statement",
    "hardening_statement",
    "parse_statement",
    "provenance_statement",
    "sbom_statement",
    "subject_digests",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
CYCLONEDX_BOM = "https://cyclonedx.org/bom"
GOLDEN_MANIFEST = "https://zerodrift.dev/golden-manifest/v1"
HARDENING = "https://zerodrift.dev/hardening/v1"
BUILD_TYPE = "https://zerodrift.dev/build/image/v1"
BUILDER_ID = "https://zerodrift.dev/builder/local"


@dataclass(frozen=True)
class Subject:
    """What a statement is about: an image name and its manifest digest."""

    name: str
    digest: str

    def to_dict(self) -> dict[str, Any]:
        """Render as an in-toto ResourceDescriptor."""
        algorithm, _, value = self.digest.partition(":")
        return {"name": self.name, "digest": {algorithm: value}}


@dataclass(frozen=True)
class ResolvedDependency:
    """An input of the build (base, ``.deb``, copied source), by digest.

    Attributes:
        name: A short name (``busybox-static``, ``app/web/index.html``).
        digest: ``sha256:<hex>`` of its content.
        uri: Where it came from (``pkg:deb/debian/...``, ``git+file:...``).
    """

    name: str
    digest: str
    uri: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Render as an in-toto ResourceDescriptor."""
        algorithm, _, value = self.digest.partition(":")
        data: dict[str, Any] = {"name": self.name, "digest": {algorithm: value}}
        if self.uri:
            data["uri"] = self.uri
        return data


def _statement(
    subject: Subject, predicate_type: str, predicate: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "_type": STATEMENT_TYPE,
        "subject": [subject.to_dict()],
        "predicateType": predicate_type,
        "predicate": dict(predicate),
    }


def provenance_statement(
    subject: Subject,
    *,
    recipe_digest: str,
    commit: str | None,
    repository: str | None,
    dependencies: Sequence[ResolvedDependency],
    invocation_id: str,
    started_on: datetime,
    finished_on: datetime,
) -> dict[str, Any]:
    """Build the SLSA Provenance v1 statement of an image build.

    Args:
        subject: The image built.
        recipe_digest: Canonical digest of the image's recipe in the spec.
        commit: The spec repository's commit, or ``None`` if unversioned.
        repository: Where the spec repository lives (a URI), if known.
        dependencies: Every input, by digest.
        invocation_id: A unique id of this build run.
        started_on: When the build started (timezone-aware).
        finished_on: When it finished (timezone-aware).
    """
    external: dict[str, Any] = {
        "image": subject.name,
        "recipeDigest": recipe_digest,
        "commit": commit,
    }
    if repository:
        external["repository"] = repository
    predicate = {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": external,
            "internalParameters": {"zerodriftVersion": __version__},
            "resolvedDependencies": [d.to_dict() for d in dependencies],
        },
        "runDetails": {
            "builder": {"id": BUILDER_ID, "version": {"zerodrift": __version__}},
            "metadata": {
                "invocationId": invocation_id,
                "startedOn": _rfc3339(started_on),
                "finishedOn": _rfc3339(finished_on),
            },
        },
    }
    return _statement(subject, SLSA_PROVENANCE, predicate)


def sbom_statement(subject: Subject, sbom_json: str) -> dict[str, Any]:
    """Wrap a CycloneDX document as the predicate of a statement."""
    return _statement(subject, CYCLONEDX_BOM, json.loads(sbom_json))


def golden_manifest_statement(
    subject: Subject, *, merkle_root: str, manifest_digest: str, entries: int
) -> dict[str, Any]:
    """Attest the golden manifest: its Merkle root and stored document digest."""
    return _statement(
        subject,
        GOLDEN_MANIFEST,
        {
            "merkleRoot": merkle_root,
            "manifestDigest": manifest_digest,
            "entries": entries,
        },
    )


def hardening_statement(
    subject: Subject, report: Mapping[str, Any], *, checked_on: str
) -> dict[str, Any]:
    """Attest the hardening checks' outcome (evidence for the CSF report).

    Args:
        subject: The image checked.
        report: :meth:`zerodrift.protect.hardening.HardeningReport.to_dict`.
        checked_on: The date waivers were judged against (ISO 8601).
    """
    predicate = {
        "checkedOn": checked_on,
        "passed": report.get("passed"),
        "findings": list(report.get("findings", [])),
    }
    return _statement(subject, HARDENING, predicate)


def encode_statement(statement: Mapping[str, Any]) -> bytes:
    """Serialise a statement canonically (RFC 8785): the bytes that get signed."""
    return canonical_json(dict(statement))


def parse_statement(payload: bytes) -> dict[str, Any]:
    """Parse and shape-check a signed statement's payload.

    Raises:
        VerificationError: The payload is not an in-toto Statement v1.
    """
    try:
        statement = json.loads(payload)
    except ValueError as exc:
        raise VerificationError(
            "attestation payload is not JSON", reference="statement-malformed"
        ) from exc
    if (
        not isinstance(statement, dict)
        or statement.get("_type") != STATEMENT_TYPE
        or not isinstance(statement.get("subject"), list)
        or not isinstance(statement.get("predicateType"), str)
        or not isinstance(statement.get("predicate"), dict)
    ):
        raise VerificationError(
            "attestation payload is not an in-toto Statement v1",
            reference="statement-malformed",
        )
    return statement


def subject_digests(statement: Mapping[str, Any]) -> set[str]:
    """The ``sha256:<hex>`` digests a parsed statement names as subjects."""
    found = set()
    for item in statement.get("subject", []):
        digest = item.get("digest") if isinstance(item, dict) else None
        if isinstance(digest, dict) and isinstance(digest.get("sha256"), str):
            found.add("sha256:" + digest["sha256"])
    return found


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("provenance times must be timezone-aware")
    return moment.isoformat().replace("+00:00", "Z")
