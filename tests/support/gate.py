"""Helpers for gate tests: asset paths and an in-memory image evidence stand-in."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from zerodrift.gate import HardeningFinding

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "gate"

SLSA = "https://slsa.dev/provenance/v1"
CYCLONEDX = "https://cyclonedx.org/bom"
GOLDEN = "https://zerodrift.dev/golden-manifest/v1"


def asset(name: str) -> Path:
    """Path of a file under tests/assets/gate."""
    path = ASSETS / name
    assert path.exists(), path
    return path


@dataclass
class StoredImage:
    """What the stand-in store knows about one built digest."""

    digest: str
    key_ids: set[str] = field(default_factory=set)
    attestations: set[str] = field(default_factory=lambda: {SLSA, CYCLONEDX, GOLDEN})
    commit: str | None = None
    verified_in: set[str] = field(default_factory=set)
    hardening: list[HardeningFinding] = field(default_factory=list)


class InMemoryEvidence:
    """TEST STAND-IN for the image store's ImageEvidence adapter.

    The real store (builds, signatures, attestations, deployments) is written
    on another branch; this stand-in answers the same Protocol from a dict so
    the image rules can be tested now.
    """

    def __init__(self, images: dict[str, StoredImage]) -> None:
        self.images = images
        self._by_digest = {i.digest: i for i in images.values()}

    def digest(self, image: str) -> str | None:
        stored = self.images.get(image)
        return stored.digest if stored else None

    def signer_key_ids(self, digest: str) -> Collection[str]:
        return self._by_digest[digest].key_ids

    def attestation_types(self, digest: str) -> Collection[str]:
        return self._by_digest[digest].attestations

    def provenance_commit(self, digest: str) -> str | None:
        return self._by_digest[digest].commit

    def verified_in(self, digest: str) -> Collection[str]:
        return self._by_digest[digest].verified_in

    def hardening_findings(self, digest: str) -> Sequence[HardeningFinding]:
        return self._by_digest[digest].hardening
