"""What the gate needs to know about built images, behind a small Protocol.

The image store (builds, signatures, attestations, deployments) answers
:class:`ImageEvidence`. The gate asks it once per image at the edge
(:func:`collect_image_facts`) and evaluates the frozen :class:`ImageFacts`,
so the rules stay pure and an admission webhook can supply facts its own way.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from zerodrift.detect.findings import Severity
from zerodrift.protect.provenance import CYCLONEDX_BOM, GOLDEN_MANIFEST, SLSA_PROVENANCE

__all__ = [
    "ATTESTATION_TYPES",
    "HardeningFinding",
    "ImageEvidence",
    "ImageFacts",
    "collect_image_facts",
]

# in-toto predicate types that satisfy each attestation rule: the ones the
# image build signs, plus common equivalents from other build systems.
ATTESTATION_TYPES: dict[str, frozenset[str]] = {
    "image-provenance": frozenset(
        {SLSA_PROVENANCE, "https://slsa.dev/provenance/v0.2"}
    ),
    "image-sbom": frozenset(
        {
            CYCLONEDX_BOM,
            "https://cyclonedx.org/bom/v1.5",
            "https://cyclonedx.org/bom/v1.6",
            "https://spdx.dev/Document",
        }
    ),
    "image-golden-manifest": frozenset({GOLDEN_MANIFEST}),
}


@dataclass(frozen=True)
class HardeningFinding:
    """One hardening check that an image failed at build time.

    Attributes:
        check: Identifier of the hardening check (``shell-present``...).
        severity: How bad it is; high and critical block the gate.
        message: One sentence for people.
        path: The file inside the image, when the check is about one.
    """

    check: str
    severity: Severity
    message: str
    path: str | None = None


class ImageEvidence(Protocol):
    """Read-only answers about built images, implemented by the image store.

    Every method must return only *verified* facts: a signature whose
    envelope verified, an attestation whose signature verified.
    """

    def digest(self, image: str) -> str | None:
        """Digest (``sha256:...``) to deploy for recipe ``image``; ``None`` if unbuilt.

        The newest build of the recipe at the current spec, as the deploy
        would pick it.
        """

    def signer_key_ids(self, digest: str) -> Collection[str]:
        """Key ids of the valid signatures over ``digest``."""

    def attestation_types(self, digest: str) -> Collection[str]:
        """Predicate types of the valid attestations attached to ``digest``."""

    def provenance_commit(self, digest: str) -> str | None:
        """The source commit the provenance of ``digest`` names, if any."""

    def verified_in(self, digest: str) -> Collection[str]:
        """Environments where ``digest`` was deployed and then verified."""

    def hardening_findings(self, digest: str) -> Sequence[HardeningFinding]:
        """Hardening findings recorded when ``digest`` was built."""


@dataclass(frozen=True)
class ImageFacts:
    """What the evidence says about one image recipe, frozen for the rules.

    Attributes:
        image: Recipe name in the spec.
        digest: Built digest, or ``None`` when not in the store.
        key_ids: Key ids of valid signatures.
        attestation_types: Predicate types of valid attestations.
        commit: Commit named by the provenance.
        commit_is_ancestor: Whether ``commit`` is an ancestor of HEAD;
            ``None`` until the source side fills it in.
        verified_in: Environments where the digest was deployed and verified.
        hardening: Hardening findings of the build.
    """

    image: str
    digest: str | None
    key_ids: frozenset[str] = frozenset()
    attestation_types: frozenset[str] = frozenset()
    commit: str | None = None
    commit_is_ancestor: bool | None = None
    verified_in: frozenset[str] = frozenset()
    hardening: tuple[HardeningFinding, ...] = ()


def collect_image_facts(
    evidence: ImageEvidence, images: Iterable[str]
) -> dict[str, ImageFacts]:
    """Ask ``evidence`` about each image once; the result is plain data."""
    facts: dict[str, ImageFacts] = {}
    for image in sorted(set(images)):
        digest = evidence.digest(image)
        if digest is None:
            facts[image] = ImageFacts(image, None)
            continue
        facts[image] = ImageFacts(
            image=image,
            digest=digest,
            key_ids=frozenset(evidence.signer_key_ids(digest)),
            attestation_types=frozenset(evidence.attestation_types(digest)),
            commit=evidence.provenance_commit(digest),
            verified_in=frozenset(evidence.verified_in(digest)),
            hardening=tuple(evidence.hardening_findings(digest)),
        )
    return facts
