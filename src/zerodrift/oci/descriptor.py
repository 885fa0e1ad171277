"""Pure OCI models: media types, digests, descriptors and manifest documents.

Nothing here touches the disk; :mod:`zerodrift.oci.layout` does the IO. The
functions build the JSON documents of the OCI image spec 1.1 as plain dicts
and serialise them canonically (RFC 8785), so the same inputs always give the
same bytes and therefore the same digest.

Example:
    >>> config = descriptor_for(b"{}", MEDIA_TYPE_CONFIG)
    >>> manifest = image_manifest(config, [])
    >>> manifest["config"]["digest"] == config.digest
    True
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from zerodrift._internal.canonical import canonical_json
from zerodrift.errors import IntegrityError

__all__ = [
    "ANNOTATION_CREATED",
    "ANNOTATION_REF_NAME",
    "EMPTY_JSON",
    "MEDIA_TYPE_CONFIG",
    "MEDIA_TYPE_EMPTY",
    "MEDIA_TYPE_INDEX",
    "MEDIA_TYPE_LAYER",
    "MEDIA_TYPE_LAYER_GZIP",
    "MEDIA_TYPE_LAYER_ZSTD",
    "MEDIA_TYPE_MANIFEST",
    "Descriptor",
    "artifact_manifest",
    "descriptor_for",
    "digest_bytes",
    "encode",
    "image_index",
    "image_manifest",
    "parse_digest",
]

MEDIA_TYPE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_TYPE_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_TYPE_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_TYPE_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MEDIA_TYPE_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CREATED = "org.opencontainers.image.created"

_DIGEST_RE = re.compile(r"^sha256:([0-9a-f]{64})$")


def parse_digest(digest: str) -> str:
    """Return the hex part of a ``sha256:<64 hex>`` digest.

    Only SHA-256 is accepted: it is what every OCI tool writes, and one
    algorithm keeps the store's naming unambiguous.

    Raises:
        IntegrityError: ``digest`` is not a well-formed SHA-256 digest (this
            also stops path tricks such as ``sha256:../../x``).
    """
    match = _DIGEST_RE.match(digest)
    if match is None:
        raise IntegrityError(
            f"malformed digest {digest!r}",
            hint="digests look like sha256:<64 lowercase hex digits>",
            reference="digest-malformed",
        )
    return match.group(1)


def digest_bytes(data: bytes) -> str:
    """Return ``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def encode(document: Mapping[str, Any]) -> bytes:
    """Serialise a JSON document canonically (RFC 8785), as stored in blobs."""
    return canonical_json(dict(document))


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what a blob is, its digest and its size.

    Attributes:
        media_type: The blob's media type.
        digest: ``sha256:<hex>`` of the blob's bytes.
        size: Length of the blob in bytes.
        annotations: Free-form string annotations.
        artifact_type: For manifests of artifacts, the artifact's type.
    """

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None

    def __hash__(self) -> int:
        return hash(
            (
                self.media_type,
                self.digest,
                self.size,
                self.artifact_type,
                tuple(sorted(self.annotations.items())),
            )
        )

    def __post_init__(self) -> None:
        parse_digest(self.digest)
        if self.size < 0:
            raise ValueError("descriptor size must not be negative")

    @property
    def ref_name(self) -> str | None:
        """The tag this descriptor carries in an index, if any."""
        return self.annotations.get(ANNOTATION_REF_NAME)

    def with_annotations(self, annotations: Mapping[str, str]) -> Descriptor:
        """Return a copy whose annotations are ``annotations``."""
        return Descriptor(
            self.media_type,
            self.digest,
            self.size,
            dict(annotations),
            self.artifact_type,
        )

    def to_dict(self) -> dict[str, Any]:
        """Render the descriptor as OCI JSON (empty fields left out)."""
        data: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.artifact_type:
            data["artifactType"] = self.artifact_type
        if self.annotations:
            data["annotations"] = dict(sorted(self.annotations.items()))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Descriptor:
        """Parse an OCI descriptor.

        Raises:
            IntegrityError: A required field is missing or has the wrong type.
        """
        try:
            media_type = data["mediaType"]
            digest = data["digest"]
            size = data["size"]
            annotations = data.get("annotations") or {}
            artifact_type = data.get("artifactType")
        except (KeyError, TypeError, AttributeError) as exc:
            raise _malformed(f"descriptor lacks {exc}") from exc
        if not (
            isinstance(media_type, str)
            and isinstance(digest, str)
            and isinstance(size, int)
            and isinstance(annotations, dict)
            and (artifact_type is None or isinstance(artifact_type, str))
        ):
            raise _malformed("descriptor field has the wrong type")
        return cls(media_type, digest, size, dict(annotations), artifact_type)


def _malformed(message: str) -> IntegrityError:
    return IntegrityError(
        message,
        hint="the document is not valid OCI JSON; was it edited by hand?",
        reference="oci-document-malformed",
    )


def descriptor_for(
    data: bytes,
    media_type: str,
    *,
    annotations: Mapping[str, str] | None = None,
    artifact_type: str | None = None,
) -> Descriptor:
    """Describe ``data`` (digest and size computed here)."""
    return Descriptor(
        media_type,
        digest_bytes(data),
        len(data),
        dict(annotations or {}),
        artifact_type,
    )


def image_manifest(
    config: Descriptor,
    layers: Sequence[Descriptor],
    *,
    annotations: Mapping[str, str] | None = None,
    subject: Descriptor | None = None,
    artifact_type: str | None = None,
) -> dict[str, Any]:
    """Build an OCI image manifest document (image spec 1.1).

    Args:
        config: The config blob (an image config, or the empty descriptor
            for artifacts).
        layers: Layer (or artifact payload) descriptors, in order.
        annotations: Manifest annotations.
        subject: The manifest this one refers to (OCI 1.1 referrers).
        artifact_type: The artifact's type, for non-image manifests.

    Returns:
        The manifest as a JSON-ready dict.
    """
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "config": config.to_dict(),
        "layers": [layer.to_dict() for layer in layers],
    }
    if artifact_type:
        manifest["artifactType"] = artifact_type
    if subject is not None:
        manifest["subject"] = Descriptor(
            subject.media_type, subject.digest, subject.size
        ).to_dict()
    if annotations:
        manifest["annotations"] = dict(sorted(annotations.items()))
    return manifest


def artifact_manifest(
    subject: Descriptor,
    artifact_type: str,
    blobs: Sequence[Descriptor],
    *,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Build a manifest for an artifact that refers to ``subject``.

    Follows the OCI 1.1 guidance for artifacts: the config is the empty JSON
    descriptor, ``artifactType`` names the kind of artifact, and the payload
    travels in ``layers``.
    """
    empty = descriptor_for(EMPTY_JSON, MEDIA_TYPE_EMPTY)
    return image_manifest(
        empty,
        blobs,
        annotations=annotations,
        subject=subject,
        artifact_type=artifact_type,
    )


def image_index(manifests: Iterable[Descriptor]) -> dict[str, Any]:
    """Build an OCI image index document listing ``manifests`` in order."""
    return {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_INDEX,
        "manifests": [m.to_dict() for m in manifests],
    }
