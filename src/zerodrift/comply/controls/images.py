"""Protect: every image is built clean, signed, attested and reproducible."""

from __future__ import annotations

from zerodrift.comply.evidence import Evidence
from zerodrift.comply.registry import EvidenceRef, Verdict, control
from zerodrift.errors import ConfigError
from zerodrift.govern.audit import AuditRecord
from zerodrift.protect.evidence import StoreEvidence
from zerodrift.protect.provenance import CYCLONEDX_BOM, SLSA_PROVENANCE

__all__ = ["images_signed_attested", "build_ref"]

# Attestations every image needs, with the word reports use for each.
REQUIRED = {SLSA_PROVENANCE: "provenance", CYCLONEDX_BOM: "SBOM"}


def build_ref(record: AuditRecord, note: str) -> EvidenceRef:
    """Point at an ``image.build`` (or other) audit record."""
    return EvidenceRef("audit-record", str(record.seq), note, record.recorded_at)


@control(
    "images-signed-attested",
    title="Every image is built clean, signed by a trusted key, attested, "
    "and reproducible",
    csf=("PR.PS-06", "ID.RA-09", "ID.AM-02"),
)
def images_signed_attested(evidence: Evidence) -> Verdict:
    """Every image of the spec has a trustworthy build.

    For each image of the spec in force: its newest ``image.build`` audit
    record (by ``as_of``) names a digest built from a clean commit; in the
    image store, attestations of that digest carry a signature that
    verifies with a trusted key, and include an SLSA provenance and a
    CycloneDX SBOM; and the newest reproducibility check covering the image
    (``zerodrift build --check-reproducible``) found no difference. Before
    any build is recorded it is not applicable; after one, an image never
    built fails.
    """
    spec = evidence.spec_in_force
    if spec is None:
        return Verdict.not_applicable("the spec in force at that time is not known")
    names = sorted(spec.fleet.images)
    if not names:
        return Verdict.not_applicable("the spec declares no image")
    if not evidence.builds:
        return Verdict.not_applicable("no image build recorded")
    try:
        store = evidence.image_store
    except ConfigError as exc:
        return Verdict.failed(f"trusted keys cannot be loaded: {exc.message}")
    if store is None:
        return Verdict.failed("no image store: nothing was built")
    checks = evidence.audit_of("image.reproducibility")
    problems: list[str] = []
    refs: list[EvidenceRef] = []
    for name in names:
        problem = _judge(name, evidence.builds.get(name), store, checks, refs)
        if problem:
            problems.append(f"{name}: {problem}")
    if problems:
        return Verdict.failed("; ".join(problems), refs)
    return Verdict.passed(
        f"{len(names)} images built clean, signed, attested and reproducible", refs
    )


def _judge(
    name: str,
    build: AuditRecord | None,
    store: StoreEvidence,
    checks: list[AuditRecord],
    refs: list[EvidenceRef],
) -> str | None:
    if build is None:
        return "never built"
    digest = build.subject.partition("@")[2]
    refs.append(build_ref(build, f"build of {digest[:19]}"))
    problem = _signed_and_attested(build, digest, store)
    if problem:
        return problem
    check = next((r for r in reversed(checks) if name in r.subject.split(",")), None)
    if check is None:
        return "reproducibility never checked"
    refs.append(build_ref(check, "reproducibility check"))
    if name in check.details.get("differing", []):
        return "not reproducible (two builds differed)"
    return None


def _signed_and_attested(
    build: AuditRecord, digest: str, store: StoreEvidence
) -> str | None:
    if build.details.get("dirty") or not build.details.get("commit"):
        return "newest build was not from a clean commit"
    if not store.signer_key_ids(digest):
        return f"{digest[:19]} has no attestation signed by a trusted key"
    missing = [
        word
        for kind, word in REQUIRED.items()
        if kind not in store.attestation_types(digest)
    ]
    if missing:
        return f"{digest[:19]} has no signed {' or '.join(missing)}"
    return None
