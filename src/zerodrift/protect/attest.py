"""Signed attestations stored next to an image, as OCI 1.1 referrers.

Every statement about an image (SLSA provenance, SBOM, golden manifest) is
canonical JSON wrapped in a DSSE envelope (payload type
``application/vnd.in-toto+json``) and stored as an artifact whose ``subject``
is the image manifest, whose ``artifactType`` is
:data:`ENVELOPE_MEDIA_TYPE` and whose annotation
:data:`ANNOTATION_PREDICATE_TYPE` names the predicate. The attestations thus
travel with the image through registries and are found by subject.

:func:`attest_build` is called by the build with everything it learned
(and, optionally, the hardening report, signed as evidence too);
:func:`sign_image` adds signatures by another key to an image that already
has attestations (for example a release key countersigning for prod).
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from securesystemslib.dsse import Envelope
from securesystemslib.signer import Signer

from zerodrift.errors import ConfigError, VerificationError
from zerodrift.oci.descriptor import Descriptor
from zerodrift.oci.layout import Layout
from zerodrift.protect.dsse import envelope_to_json, sign_payload
from zerodrift.protect.hardening import HardeningReport
from zerodrift.protect.provenance import (
    PAYLOAD_TYPE,
    ResolvedDependency,
    Subject,
    encode_statement,
    golden_manifest_statement,
    hardening_statement,
    parse_statement,
    provenance_statement,
    sbom_statement,
    subject_digests,
)

__all__ = [
    "ANNOTATION_PREDICATE_TYPE",
    "ENVELOPE_MEDIA_TYPE",
    "AttestableBuild",
    "Attestation",
    "attest_build",
    "attest_statements",
    "list_attestations",
    "sign_image",
]

ENVELOPE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
ANNOTATION_PREDICATE_TYPE = "in-toto.io/predicate-type"


class AttestableBuild(Protocol):
    """What :func:`attest_build` needs to know about a finished build."""

    @property
    def image_name(self) -> str:
        """The image's name in the spec."""

    @property
    def image(self) -> Descriptor:
        """The stored image manifest."""

    @property
    def recipe_digest(self) -> str:
        """Canonical digest of the recipe."""

    @property
    def commit(self) -> str | None:
        """The spec repository's commit (``None`` if unversioned)."""

    @property
    def started_at(self) -> datetime:
        """When the build started (timezone-aware)."""

    @property
    def finished_at(self) -> datetime:
        """When the build finished (timezone-aware)."""

    @property
    def dependencies(self) -> Sequence[ResolvedDependency]:
        """Every input of the build, by digest."""

    @property
    def sbom(self) -> str:
        """The CycloneDX JSON text (see :func:`zerodrift.protect.sbom.build_sbom`)."""

    @property
    def golden_manifest(self) -> Descriptor:
        """The stored golden manifest artifact's manifest (a referrer)."""

    @property
    def merkle_root(self) -> str:
        """The golden manifest's Merkle root."""

    @property
    def entries(self) -> int:
        """How many paths the golden manifest lists."""


@dataclass(frozen=True)
class Attestation:
    """A signed statement found next to an image.

    Attributes:
        descriptor: The referrer artifact's manifest.
        predicate_type: From the artifact's annotation.
        envelope: The DSSE envelope (not yet verified).
    """

    descriptor: Descriptor
    predicate_type: str
    envelope: dict[str, Any]


def attest_statements(
    layout: Layout,
    image: Descriptor,
    statements: Sequence[dict[str, Any]],
    signer: Signer,
) -> list[Descriptor]:
    """Sign each statement and store it as a referrer of ``image``.

    Returns:
        The artifact manifests' descriptors, in the order of ``statements``.

    Raises:
        IntegrityError: ``image`` is not in the layout.
        OperationalError: The store cannot be written.
    """
    stored = []
    for statement in statements:
        envelope = sign_payload(encode_statement(statement), PAYLOAD_TYPE, signer)
        stored.append(
            layout.add_artifact(
                image,
                ENVELOPE_MEDIA_TYPE,
                [(envelope_to_json(envelope).encode(), ENVELOPE_MEDIA_TYPE)],
                annotations={ANNOTATION_PREDICATE_TYPE: statement["predicateType"]},
            )
        )
    return stored


def attest_build(
    result: AttestableBuild,
    layout: Layout,
    signer: Signer,
    *,
    hardening: HardeningReport | None = None,
    checked_on: date | None = None,
) -> list[Descriptor]:
    """Sign provenance, SBOM and golden manifest statements for a build.

    Args:
        result: What the build produced.
        layout: The store holding the image.
        signer: The project key.
        hardening: The hardening report, attested too when given.
        checked_on: The date the hardening waivers were judged against.

    Returns:
        The stored attestation artifacts (provenance, SBOM, golden manifest,
        then the hardening report if given).

    Raises:
        IntegrityError: The image is not in the layout.
        OperationalError: The store cannot be written.
    """
    subject = Subject(result.image_name, result.image.digest)
    statements = [
        provenance_statement(
            subject,
            recipe_digest=result.recipe_digest,
            commit=result.commit,
            repository=None,
            dependencies=result.dependencies,
            invocation_id=str(uuid.uuid4()),
            started_on=result.started_at,
            finished_on=result.finished_at,
        ),
        sbom_statement(subject, result.sbom),
        golden_manifest_statement(
            subject,
            merkle_root=result.merkle_root,
            manifest_digest=result.golden_manifest.digest,
            entries=result.entries,
        ),
    ]
    if hardening is not None:
        day = (checked_on or result.finished_at.date()).isoformat()
        statements.append(
            hardening_statement(subject, hardening.to_dict(), checked_on=day)
        )
    return attest_statements(layout, result.image, statements, signer)


def list_attestations(layout: Layout, image: Descriptor) -> list[Attestation]:
    """The DSSE attestations stored as referrers of ``image``.

    Raises:
        IntegrityError: A referrer is missing, corrupt or malformed.
        VerificationError: A referrer's blob is not a DSSE envelope.
    """
    found = []
    for ref in layout.referrers(image.digest, artifact_type=ENVELOPE_MEDIA_TYPE):
        manifest = layout.read_json(ref)
        annotations = manifest.get("annotations") or {}
        layers = manifest.get("layers") or []
        if not layers:
            continue
        blob = layout.read_blob(Descriptor.from_dict(layers[0]))
        found.append(
            Attestation(
                ref,
                str(annotations.get(ANNOTATION_PREDICATE_TYPE, "")),
                _parse_envelope(blob),
            )
        )
    return found


def sign_image(layout: Layout, ref: str, signer: Signer) -> list[Descriptor]:
    """Countersign an image's attestations with ``signer``.

    Each distinct statement about the image gets a new envelope signed by
    ``signer``; statements it already signed are skipped. The caller should
    run :func:`zerodrift.protect.verify.verify_image` first: this function
    signs what is there, it does not judge it.

    Raises:
        ConfigError: The image is unknown or has no attestations.
        IntegrityError: The layout is damaged.
    """
    image = layout.resolve(ref)
    payloads: dict[bytes, dict[str, Any]] = {}
    signed_by_me: set[bytes] = set()
    for attestation in list_attestations(layout, image):
        payload = base64.b64decode(attestation.envelope["payload"])
        statement = parse_statement(payload)
        if image.digest not in subject_digests(statement):
            continue
        payloads.setdefault(payload, statement)
        keyids = {s.get("keyid") for s in attestation.envelope.get("signatures", [])}
        if signer.public_key.keyid in keyids:
            signed_by_me.add(payload)
    if not payloads:
        raise ConfigError(
            f"image {ref!r} has no attestations to sign",
            hint="build it with 'zerodrift build' first",
            reference="attestations-missing",
        )
    todo = [s for p, s in payloads.items() if p not in signed_by_me]
    return attest_statements(layout, image, todo, signer)


def _parse_envelope(blob: bytes) -> dict[str, Any]:
    """Parse a stored envelope, checking its shape without changing it.

    ``Envelope.from_dict`` rewrites the signature dicts it is given, so it
    gets a deep copy.
    """
    try:
        data = json.loads(blob)
        Envelope.from_dict(copy.deepcopy(data))
    except (ValueError, KeyError, TypeError) as exc:
        raise VerificationError(
            "an attestation is not a DSSE envelope", reference="envelope-malformed"
        ) from exc
    return dict(data)
