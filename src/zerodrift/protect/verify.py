"""Offline verification of an image in the store against the trust policy.

:func:`verify_image` runs five numbered steps and stops at the first one that
fails, raising :class:`ImageVerificationError` that names the step and says
what failed:

1. **store**: every blob the image and its referrers reach is present with
   its recorded size and digest;
2. **signatures**: each required attestation (SLSA provenance, SBOM, golden
   manifest) has at least one DSSE envelope signed by a key the trust policy
   allows (for the environment, when one is given), whose statement names
   this image's digest as its subject;
3. **provenance**: the build's spec commit exists in the repository;
4. **golden manifest**: the stored golden manifest is the one attested, and
   recomputing it from the image's layer tars gives the same Merkle root;
5. **SBOM**: the attested SBOM is a CycloneDX document about this image.

Nothing here touches the network. The commit lookup is a callable so that
the pure logic runs without a repository in tests.
"""

from __future__ import annotations

import base64
import copy
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError as SslibVerificationError

from zerodrift.detect.manifest import ARTIFACT_TYPE as GOLDEN_ARTIFACT_TYPE
from zerodrift.detect.manifest import (
    GoldenManifest,
    entries_from_tar,
    merge_layers,
)
from zerodrift.errors import VerificationError, ZerodriftError
from zerodrift.oci.descriptor import (
    MEDIA_TYPE_LAYER,
    MEDIA_TYPE_LAYER_GZIP,
    MEDIA_TYPE_LAYER_ZSTD,
    Descriptor,
)
from zerodrift.oci.layout import Layout
from zerodrift.protect.attest import Attestation, list_attestations
from zerodrift.protect.keys import PublicKey
from zerodrift.protect.provenance import (
    CYCLONEDX_BOM,
    GOLDEN_MANIFEST,
    PAYLOAD_TYPE,
    SLSA_PROVENANCE,
    parse_statement,
    subject_digests,
)

__all__ = [
    "REQUIRED_PREDICATES",
    "ImageVerificationError",
    "Step",
    "TrustPolicyVerifier",
    "VerifyReport",
    "git_commit_exists",
    "verify_image",
]

REQUIRED_PREDICATES = (SLSA_PROVENANCE, CYCLONEDX_BOM, GOLDEN_MANIFEST)
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_LAYER_TYPES = (MEDIA_TYPE_LAYER, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_ZSTD)
STEP_NAMES = {
    1: "store",
    2: "signatures",
    3: "provenance",
    4: "golden manifest",
    5: "sbom",
}


@dataclass(frozen=True)
class _Policy:
    """The keys allowed for the target, the keys known at all, the target."""

    allowed: Sequence[PublicKey]
    known: Sequence[PublicKey]
    environment: str | None


@dataclass(frozen=True)
class Step:
    """One verification step that passed, with what it established."""

    number: int
    name: str
    detail: str


@dataclass
class VerifyReport:
    """What a successful verification established.

    Attributes:
        image: The reference the user gave.
        digest: The image manifest digest verified.
        steps: The steps, in order.
        signers: Predicate type to the names of the keys that signed it.
        commit: The spec commit the provenance names.
        merkle_root: The golden manifest's Merkle root.
    """

    image: str
    digest: str
    steps: list[Step] = field(default_factory=list)
    signers: dict[str, list[str]] = field(default_factory=dict)
    commit: str | None = None
    merkle_root: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Render for ``--format json``."""
        return {
            "image": self.image,
            "digest": self.digest,
            "verified": True,
            "commit": self.commit,
            "merkle_root": self.merkle_root,
            "signers": self.signers,
            "steps": [
                {"step": s.number, "name": s.name, "ok": True, "detail": s.detail}
                for s in self.steps
            ],
        }


class ImageVerificationError(VerificationError):
    """Verification stopped at a failed step.

    Attributes:
        step: The number of the step that failed (see the module docstring).
        passed: The steps that passed before it.
    """

    def __init__(
        self,
        step: int,
        message: str,
        *,
        reference: str,
        hint: str | None = None,
        passed: Sequence[Step] = (),
    ) -> None:
        super().__init__(
            f"step {step} ({STEP_NAMES[step]}) failed: {message}",
            hint=hint,
            reference=reference,
        )
        self.step = step
        self.passed = list(passed)


def git_commit_exists(repository: Path) -> Callable[[str], bool]:
    """A commit lookup for :func:`verify_image` backed by ``git cat-file -e``."""

    def exists(commit: str) -> bool:
        result = subprocess.run(
            ["git", "-C", str(repository), "cat-file", "-e", f"{commit}^{{commit}}"],
            capture_output=True,
            check=False,
            timeout=30,
        )
        return result.returncode == 0

    return exists


def verify_image(
    layout: Layout,
    ref: str,
    *,
    allowed_keys: Sequence[PublicKey],
    known_keys: Sequence[PublicKey] = (),
    environment: str | None = None,
    commit_exists: Callable[[str], bool],
) -> VerifyReport:
    """Verify the image ``ref`` (a tag or ``sha256:`` digest) in ``layout``.

    Args:
        layout: The store holding the image and its referrers.
        ref: Tag or manifest digest.
        allowed_keys: Keys the trust policy allows to sign for the target.
        known_keys: Every key the spec knows, to name a key that signed but
            is not allowed for ``environment``.
        environment: The environment checked against, for messages.
        commit_exists: Tells whether a spec commit is in the repository.

    Returns:
        The report of the steps that passed.

    Raises:
        ImageVerificationError: A step failed; the error names it.
        ConfigError: ``ref`` is not in the store.
    """
    image = layout.resolve(ref)
    report = VerifyReport(ref, image.digest)
    _check_store(layout, image, report)
    statements = _check_signatures(
        layout, image, _Policy(allowed_keys, known_keys, environment), report
    )
    _check_provenance(statements[SLSA_PROVENANCE], commit_exists, report)
    report.merkle_root = _check_golden(
        layout, image, statements[GOLDEN_MANIFEST], report
    )
    report.steps.append(
        Step(4, "golden manifest", f"Merkle root {report.merkle_root[:16]}… matches")
    )
    _check_sbom(statements[CYCLONEDX_BOM], report)
    return report


def _check_store(layout: Layout, image: Descriptor, report: VerifyReport) -> None:
    """Step 1: the content of the image and of every referrer is intact."""
    try:
        checked = layout.check(image.digest)
        referrers = layout.referrers(image.digest)
        for referrer in referrers:
            layout.check(referrer.digest)
    except ZerodriftError as exc:
        raise _fail(1, exc.message, exc.reference, report, hint=exc.hint) from exc
    report.steps.append(
        Step(1, "store", f"{checked.blobs} blobs, {len(referrers)} referrers intact")
    )


def _check_signatures(
    layout: Layout, image: Descriptor, policy: _Policy, report: VerifyReport
) -> dict[str, dict[str, Any]]:
    """Step 2: a trusted signature on each required statement about the image."""
    attestations = list_attestations(layout, image)
    statements: dict[str, dict[str, Any]] = {}
    for predicate_type in REQUIRED_PREDICATES:
        statement, signers = _trusted_statement(
            attestations, predicate_type, image.digest, policy, report
        )
        statements[predicate_type] = statement
        report.signers[predicate_type] = signers
    who = sorted({name for names in report.signers.values() for name in names})
    report.steps.append(
        Step(2, "signatures", f"{len(statements)} attestations signed by {who}")
    )
    return statements


def _check_provenance(
    statement: dict[str, Any],
    commit_exists: Callable[[str], bool],
    report: VerifyReport,
) -> None:
    """Step 3: the provenance's spec commit is in the repository."""
    definition = statement["predicate"].get("buildDefinition", {})
    commit = definition.get("externalParameters", {}).get("commit")
    if not isinstance(commit, str) or not commit:
        raise _fail(
            3,
            "the provenance names no spec commit (built from an uncommitted spec)",
            "provenance-commit-missing",
            report,
            hint="commit the spec and build again",
        )
    if _COMMIT_RE.match(commit) is None:
        raise _fail(
            3,
            f"the provenance's commit {commit[:80]!r} is not a git object id",
            "provenance-commit-malformed",
            report,
        )
    if not commit_exists(commit):
        raise _fail(
            3,
            f"spec commit {commit} is not in this repository",
            "provenance-commit-unknown",
            report,
            hint="fetch the commit, or verify in the repository that built it",
        )
    report.commit = commit
    report.steps.append(Step(3, "provenance", f"built from commit {commit[:12]}"))


def _check_sbom(statement: dict[str, Any], report: VerifyReport) -> None:
    """Step 5: the attested SBOM is a CycloneDX document."""
    bom = statement["predicate"]
    if bom.get("bomFormat") != "CycloneDX":
        raise _fail(5, "the SBOM is not a CycloneDX document", "sbom-invalid", report)
    components = len(bom.get("components") or [])
    detail = f"CycloneDX {bom.get('specVersion')}, {components} components"
    report.steps.append(Step(5, "sbom", detail))


def _fail(
    step: int,
    message: str,
    reference: str,
    report: VerifyReport,
    *,
    hint: str | None = None,
) -> ImageVerificationError:
    return ImageVerificationError(
        step, message, reference=reference, hint=hint, passed=report.steps
    )


def _trusted_statement(
    attestations: Sequence[Attestation],
    predicate_type: str,
    digest: str,
    policy: _Policy,
    report: VerifyReport,
) -> tuple[dict[str, Any], list[str]]:
    """Return the first statement of a type signed by an allowed key.

    Raises:
        ImageVerificationError: None qualifies; the most telling reason wins.
    """
    candidates = [a for a in attestations if a.predicate_type == predicate_type]
    if not candidates:
        raise _fail(
            2,
            f"no {predicate_type} attestation is stored with the image",
            "attestation-missing",
            report,
            hint="build (or pull) the image with its attestations",
        )
    reasons: list[tuple[int, str, str]] = []
    for attestation in candidates:
        outcome = _check_envelope(attestation, predicate_type, digest, policy)
        if isinstance(outcome, list):
            return parse_statement(_payload(attestation)), outcome
        reasons.append(outcome)
    _, reference, message = max(reasons)
    raise _signature_failure(reference, message, report)


def _signature_failure(
    reference: str, message: str, report: VerifyReport
) -> ImageVerificationError:
    hints = {
        "signature-untrusted": "list the signer's public key under 'trust.keys'",
        "signature-wrong-environment": "add the key to 'trust.environments' for "
        "this environment, or have an allowed key countersign (zerodrift sign)",
        "signature-invalid": "the attestation was modified after signing; "
        "rebuild or pull the image again",
    }
    return _fail(2, message, reference, report, hint=hints.get(reference))


def _check_envelope(
    attestation: Attestation,
    predicate_type: str,
    digest: str,
    policy: _Policy,
) -> list[str] | tuple[int, str, str]:
    """Signer names if the envelope is good, else ``(rank, reference, message)``.

    Higher ranks are more telling: a tampered payload beats a wrong-environment
    key, which beats an unknown key.
    """
    try:
        envelope = Envelope.from_dict(copy.deepcopy(attestation.envelope))
    except (KeyError, TypeError, ValueError):
        return (3, "envelope-malformed", "an attestation is not a DSSE envelope")
    if envelope.payload_type != PAYLOAD_TYPE:
        return (3, "envelope-wrong-type", f"payload type {envelope.payload_type!r}")
    allowed_by_id = {k.keyid: k for k in policy.allowed}
    known_by_id = {k.keyid: k for k in policy.known}
    environment = policy.environment
    good: list[str] = []
    worst: tuple[int, str, str] | None = None
    for keyid in envelope.signatures:
        if keyid in allowed_by_id:
            key = allowed_by_id[keyid]
            try:
                envelope.verify([key.key], 1)
            except SslibVerificationError:
                worst = max(
                    worst or (0, "", ""),
                    (
                        4,
                        "signature-invalid",
                        f"the {predicate_type} attestation's signature by key "
                        f"{key.name!r} does not match its payload (tampered)",
                    ),
                )
                continue
            good.append(key.name)
        elif keyid in known_by_id:
            name = known_by_id[keyid].name
            target = f"environment {environment!r}" if environment else "this check"
            worst = max(
                worst or (0, "", ""),
                (
                    2,
                    "signature-wrong-environment",
                    f"the {predicate_type} attestation is signed by key {name!r}, "
                    f"which the trust policy does not allow for {target}",
                ),
            )
        else:
            worst = max(
                worst or (0, "", ""),
                (
                    1,
                    "signature-untrusted",
                    f"the {predicate_type} attestation is signed by an untrusted "
                    f"key ({keyid[:12]}…)",
                ),
            )
    if not good:
        return worst or (1, "signature-untrusted", "the attestation is unsigned")
    try:
        statement = parse_statement(_payload(attestation))
    except VerificationError as exc:
        return (3, exc.reference, exc.message)
    if statement["predicateType"] != predicate_type:
        return (3, "statement-type-mismatch", "annotation and statement disagree")
    if digest not in subject_digests(statement):
        return (
            3,
            "statement-wrong-subject",
            f"the signed {predicate_type} statement is about another image",
        )
    return sorted(good)


def _payload(attestation: Attestation) -> bytes:
    return base64.b64decode(attestation.envelope["payload"])


def _check_golden(
    layout: Layout,
    image: Descriptor,
    statement: dict[str, Any],
    report: VerifyReport,
) -> str:
    predicate = statement["predicate"]
    attested_root = predicate.get("merkleRoot")
    wanted = predicate.get("manifestDigest")
    stored: GoldenManifest | None = None
    for referrer in layout.referrers(image.digest, artifact_type=GOLDEN_ARTIFACT_TYPE):
        manifest = layout.read_json(referrer)
        layers = manifest.get("layers") or []
        blob = Descriptor.from_dict(layers[0]) if layers else None
        if blob is not None and wanted in (referrer.digest, blob.digest):
            try:
                stored = GoldenManifest.from_json(layout.read_blob(blob))
            except ZerodriftError as exc:
                raise _fail(4, exc.message, exc.reference, report) from exc
            break
    if stored is None:
        raise _fail(
            4,
            f"the attested golden manifest {wanted} is not stored with the image",
            "golden-manifest-missing",
            report,
        )
    if stored.merkle_root != attested_root:
        raise _fail(
            4,
            "the stored golden manifest's Merkle root differs from the attested one",
            "golden-manifest-root-mismatch",
            report,
        )
    recomputed = _layers_root(layout, image, stored.image, report)
    if recomputed != attested_root:
        raise _fail(
            4,
            f"the image's layers give Merkle root {recomputed[:16]}…, the "
            f"attested golden manifest says {str(attested_root)[:16]}…",
            "golden-manifest-layers-mismatch",
            report,
            hint="the layers and the golden manifest were built apart; rebuild",
        )
    return recomputed


def _layers_root(
    layout: Layout, image: Descriptor, name: str, report: VerifyReport
) -> str:
    manifest = layout.read_json(image)
    layers = []
    for item in manifest.get("layers") or []:
        layer = Descriptor.from_dict(item)
        if layer.media_type not in _LAYER_TYPES:
            raise _fail(
                4,
                f"cannot read layer {layer.digest} of type {layer.media_type}",
                "layer-unsupported",
                report,
            )
        with layout.open_blob(layer.digest, size=layer.size) as reader:
            # The reader hashes what passes through it; tarfile and zstandard
            # only need its read().
            stream: Any = reader
            if layer.media_type == MEDIA_TYPE_LAYER_ZSTD:
                import zstandard

                stream = zstandard.ZstdDecompressor().stream_reader(stream)
            layers.append(entries_from_tar(stream))
            reader.verify_rest()
    return GoldenManifest.build(name, merge_layers(layers)).merkle_root


@dataclass
class TrustPolicyVerifier:
    """Verifies each image against the trust policy before it may run.

    The reconciler calls :meth:`verify` before it loads an image or creates a
    node from it (and records each success in the audit trail); an image that
    fails any step of :func:`verify_image` never runs. Each digest is
    verified once per environment and per verifier.

    Args:
        layout: The image store.
        keys_for: The keys the trust policy allows for an environment.
        known_keys: Every key the spec knows (for precise messages).
        commit_exists: Tells whether a provenance commit is in the repository.
    """

    layout: Layout
    keys_for: Callable[[str], Sequence[PublicKey]]
    known_keys: Sequence[PublicKey]
    commit_exists: Callable[[str], bool]
    _verified: dict[tuple[str, str], str] = field(default_factory=dict)

    def verify(self, image: Any, environment: str) -> None:
        """Verify ``image`` (with ``name`` and ``digest``) for ``environment``.

        Raises:
            ImageVerificationError: A verification step failed.
            ConfigError: The image is not in the store.
        """
        self.golden_root(image, environment)

    def golden_root(self, image: Any, environment: str) -> str:
        """Verify ``image`` for ``environment``; return its golden Merkle root.

        The root is the one the signed golden-manifest attestation names and
        the image's layers reproduce: drift detection compares the image's
        content on disk with the stored manifest of that root.

        Raises:
            ImageVerificationError: A verification step failed.
            ConfigError: The image is not in the store.
        """
        key = (image.digest, environment)
        if key not in self._verified:
            report = verify_image(
                self.layout,
                image.digest,
                allowed_keys=self.keys_for(environment),
                known_keys=self.known_keys,
                environment=environment,
                commit_exists=self.commit_exists,
            )
            self._verified[key] = str(report.merkle_root)
        return self._verified[key]
