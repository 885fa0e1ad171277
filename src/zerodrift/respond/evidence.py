"""Evidence: content-addressed, fsynced blobs and signed export archives.

Every item captured from a drifted node (its inspect document, its changed
files as a tar archive, its process list, its recent logs, the findings) is
stored once under ``.zerodrift/evidence/sha256/<hex>``, named by the SHA-256
of its content, written through a temporary file, fsynced and renamed. An
incident's *evidence manifest* (item name -> digest and size) is itself such
a blob; its digest is what the incident record and the audit trail's
chain-of-custody entries name.

``zerodrift evidence export`` writes a tar archive holding the manifest, the
blobs, and a DSSE envelope over the manifest signed with the project key;
:func:`verify_archive` checks the signature against the trusted keys and
every blob against the manifest.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zerodrift._internal.atomic import atomic_writer, write_atomic
from zerodrift._internal.canonical import canonical_json
from zerodrift.errors import IntegrityError, Location, VerificationError

__all__ = [
    "MANIFEST_PAYLOAD_TYPE",
    "EvidenceStore",
    "export_archive",
    "files_archive",
    "verify_archive",
]

MANIFEST_PAYLOAD_TYPE = "application/vnd.zerodrift.evidence-manifest+json"

_MANIFEST = "manifest.json"
_ENVELOPE = "manifest.dsse.json"
_BLOBS = "blobs/sha256/"


@dataclass(frozen=True)
class EvidenceStore:
    """The project's content-addressed evidence folder.

    Args:
        root: The folder (``.zerodrift/evidence``).
    """

    root: Path

    def path(self, digest: str) -> Path:
        """Where the blob ``digest`` (``sha256:<hex>``) is stored."""
        algorithm, _, hexdigest = digest.partition(":")
        if algorithm != "sha256" or len(hexdigest) != 64:
            raise IntegrityError(
                f"not a sha256 digest: {digest!r}", reference="evidence-digest-bad"
            )
        return self.root / "sha256" / hexdigest

    def put(self, data: bytes) -> str:
        """Store ``data`` (fsynced) and return its digest; stored once."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, data, mode=0o444)
        return digest

    def get(self, digest: str) -> bytes:
        """Read a blob back, checking its digest.

        Raises:
            IntegrityError: The blob is missing or its content changed.
        """
        target = self.path(digest)
        try:
            data = target.read_bytes()
        except OSError as exc:
            raise IntegrityError(
                f"evidence {digest} is missing",
                location=Location(str(target)),
                reference="evidence-missing",
            ) from exc
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise IntegrityError(
                f"evidence {digest} was altered on disk",
                location=Location(str(target)),
                reference="evidence-altered",
            )
        return data

    def put_manifest(self, incident: str, items: Mapping[str, bytes]) -> str:
        """Store every item and a manifest listing them; return its digest."""
        manifest = {
            "incident": incident,
            "items": {
                name: {"digest": self.put(data), "size": len(data)}
                for name, data in sorted(items.items())
            },
        }
        return self.put(canonical_json(manifest))

    def manifest(self, digest: str) -> dict[str, Any]:
        """Read and parse a stored manifest."""
        data: dict[str, Any] = json.loads(self.get(digest))
        return data


def export_archive(
    store: EvidenceStore, manifest_digest: str, envelope: Mapping[str, Any], out: Path
) -> int:
    """Write the evidence archive of one manifest; return its item count.

    Args:
        store: Where the blobs are.
        manifest_digest: The incident's evidence manifest.
        envelope: A DSSE envelope over the manifest's bytes.
        out: The archive to write (all or nothing).

    Raises:
        IntegrityError: A blob is missing or altered.
    """
    raw = store.get(manifest_digest)
    manifest = json.loads(raw)
    with atomic_writer(out) as handle, tarfile.open(fileobj=handle, mode="w") as tar:
        _add(tar, _MANIFEST, raw)
        _add(tar, _ENVELOPE, json.dumps(dict(envelope), sort_keys=True).encode())
        for item in manifest["items"].values():
            digest = item["digest"]
            _add(tar, _BLOBS + digest.partition(":")[2], store.get(digest))
    return len(manifest["items"])


def verify_archive(
    archive: Path,
    verify: Callable[[dict[str, Any]], bytes],
) -> dict[str, Any]:
    """Check an evidence archive; return its manifest.

    Args:
        archive: The archive.
        verify: ``verify(envelope) -> payload``, checking the signature
            against trusted keys (raises :class:`VerificationError`).

    Raises:
        VerificationError: The signature is missing or untrusted, the manifest
            differs from the signed one, or a blob is missing or altered.
    """
    members = _read_members(archive)
    location = Location(str(archive))
    if _MANIFEST not in members or _ENVELOPE not in members:
        raise VerificationError(
            f"{archive} is not an evidence archive (no signed manifest)",
            location=location,
            hint="create one with zerodrift evidence export INCIDENT",
            reference="evidence-archive-malformed",
        )
    payload = verify(json.loads(members[_ENVELOPE]))
    if payload != members[_MANIFEST]:
        raise VerificationError(
            "the manifest differs from the signed one",
            location=location,
            reference="evidence-manifest-altered",
        )
    manifest: dict[str, Any] = json.loads(payload)
    for name, item in sorted(manifest["items"].items()):
        digest = item["digest"]
        data = members.get(_BLOBS + digest.partition(":")[2])
        if data is None or "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise VerificationError(
                f"evidence item {name!r} is missing or altered",
                location=location,
                reference="evidence-item-altered",
            )
    return manifest


def files_archive(files: Sequence[tuple[str, bytes, int]]) -> bytes:
    """A deterministic tar of ``(path, content, mode)`` captured from a node."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, data, mode in sorted(files):
            _add(tar, path.lstrip("/"), data, mode)
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o444) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def _read_members(archive: Path) -> dict[str, bytes]:
    try:
        with tarfile.open(archive, mode="r:") as tar:
            members = {}
            for member in tar.getmembers():
                if member.isfile():
                    handle = tar.extractfile(member)
                    if handle is not None:
                        members[member.name] = handle.read()
            return members
    except (OSError, tarfile.TarError) as exc:
        raise VerificationError(
            f"cannot read {archive}: {exc}",
            location=Location(str(archive)),
            reference="evidence-archive-unreadable",
        ) from exc
