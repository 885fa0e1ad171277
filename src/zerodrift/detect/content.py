"""Image content in the runtime's storage, verified against the golden manifest.

Every node of an image reads its files from the same layer folders of the
runtime's storage (overlay lower layers). Whoever can write there changes
every node of the image at once, without touching any node's writable layer,
so the node checks cannot see it. This module re-reads those folders in
full, hashes every regular file, and compares the resulting tree with the
image's golden manifest (:mod:`zerodrift.detect.manifest`) from the image
store, whose Merkle root the image's signed attestation fixes.

Cost grows with distinct images, not nodes: each image digest the nodes use
is verified once per run, and a layer shared by several images is read and
hashed once per run. Nothing is cached between runs: a full verification
rehashes every byte, because a stat-based shortcut is exactly what someone
with write access to the storage can defeat.

The layer folders are named by podman's image inspect (``GraphDriver``,
overlay driver only). Each holds one layer as unpacked: overlay whiteouts
(character devices 0/0, ``.wh.`` files) and opaque folders (an
``overlay.opaque`` extended attribute) are applied while the layers are
merged, bottom to top, the way the kernel shows them to a node.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from zerodrift.detect.findings import Finding, Severity
from zerodrift.detect.manifest import (
    ARTIFACT_TYPE,
    SECURITY_XATTRS,
    Diff,
    Entry,
    EntryType,
    GoldenManifest,
    diff,
    merge_layers,
)
from zerodrift.errors import (
    IntegrityError,
    OperationalError,
    VerificationError,
    ZerodriftError,
)
from zerodrift.oci.descriptor import Descriptor
from zerodrift.oci.layout import Layout
from zerodrift.runtime._http import quote_name
from zerodrift.runtime.images import ResolvedImage, UnsafeNoVerification

__all__ = [
    "CSF",
    "SOURCE",
    "ContentCheck",
    "GoldenRootVerifier",
    "ImageContent",
    "ImageUse",
    "LayerReader",
    "content_findings",
    "layer_folders",
    "stored_golden",
    "trusted_golden",
    "verify_images",
]

SOURCE = "image"

CSF: dict[str, tuple[str, ...]] = {
    "image-tampered": ("DE.CM-09", "DE.AE-02", "PR.DS-01", "PR.PS-02"),
    "image-unverified": ("DE.CM-09", "PR.DS-01", "PR.PS-02"),
}
"""CSF 2.0 subcategories each kind of image finding supports."""

REMEDY = (
    "replacing the nodes is not enough: they would reuse the same tampered "
    "layer. zerodrift respond --image IMAGE --env ENV (or respond NODE for "
    "any node of it) quarantines every node of the image with its evidence, "
    "removes the image from the runtime's storage and reloads it from the "
    "verified image store; check --respond does it at once when every "
    "service using the image is 'auto'"
)
"""What to do about tampered storage, carried in each finding."""

_OPAQUE_XATTRS = (
    b"trusted.overlay.opaque",
    b"user.overlay.opaque",
    b"user.fuseoverlayfs.opaque",
)
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
_STORAGE_ERRORS = frozenset({"image-storage-unsupported", "image-storage-unreadable"})
_MAX_LISTED = 50
_READ = 1 << 20


@runtime_checkable
class GoldenRootVerifier(Protocol):
    """A verifier that can say which golden manifest the signatures attest."""

    def golden_root(self, image: ResolvedImage, environment: str) -> str:
        """Verify ``image`` for ``environment``; return its attested Merkle root.

        Raises:
            VerificationError: The image fails verification.
        """


@dataclass(frozen=True)
class ImageUse:
    """An image digest and the nodes of one environment that run it.

    Attributes:
        name: The image name of the spec.
        digest: The image manifest digest.
        image_id: The runtime's id of the image (its config digest).
        nodes: The nodes using it.
        services: Their services.
    """

    name: str
    digest: str
    image_id: str
    nodes: tuple[str, ...]
    services: tuple[str, ...]


@dataclass
class ImageContent:
    """The outcome of verifying one image's content on disk.

    Attributes:
        use: The image and its nodes.
        layers: The layer folders read, bottom first.
        diff: How the content differs from the golden manifest.
        signed: Whether the golden manifest was checked against a signature.
        merkle_root: The golden manifest's Merkle root.
        files: Regular files hashed for this image.
        error: Why the image could not be verified, if it could not.
    """

    use: ImageUse
    layers: list[str] = field(default_factory=list)
    diff: Diff | None = None
    signed: bool = False
    merkle_root: str | None = None
    files: int = 0
    error: ZerodriftError | None = None


@dataclass
class ContentCheck:
    """Every image verified in one run, with the work it took.

    Attributes:
        images: One result per distinct image digest.
        files_hashed: Regular files hashed (each shared layer once).
        bytes_hashed: Bytes read and hashed.
        seconds: Wall time.
    """

    images: list[ImageContent] = field(default_factory=list)
    files_hashed: int = 0
    bytes_hashed: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Render as a JSON-ready dict."""
        return {
            "images": len(self.images),
            "files_hashed": self.files_hashed,
            "bytes_hashed": self.bytes_hashed,
            "seconds": round(self.seconds, 3),
        }


# --- Golden manifests from the image store ------------------------------------


def stored_golden(layout: Layout, digest: str) -> list[GoldenManifest]:
    """The golden manifests stored as referrers of image ``digest``.

    Raises:
        IntegrityError: A stored manifest is malformed or its Merkle root does
            not match its entries.
    """
    found = []
    for referrer in layout.referrers(digest, artifact_type=ARTIFACT_TYPE):
        layers = layout.read_json(referrer).get("layers") or []
        if layers:
            blob = Descriptor.from_dict(layers[0])
            found.append(GoldenManifest.from_json(layout.read_blob(blob)))
    return found


def trusted_golden(
    layout: Layout, image: ResolvedImage, verifier: object, environment: str
) -> tuple[GoldenManifest, bool]:
    """The golden manifest of ``image`` that its signatures vouch for.

    With a :class:`GoldenRootVerifier` (the trust-policy verifier), the image
    is verified for ``environment`` and the stored manifest must have the
    attested Merkle root. With :class:`UnsafeNoVerification` (tests of the
    runtime with unsigned images) the stored manifest is used as it is.

    Returns:
        The manifest, and whether a signature vouched for it.

    Raises:
        VerificationError: The image fails verification, no verifier is
            configured, or no stored manifest has the attested root.
        IntegrityError: The image has no golden manifest, or it is damaged.
    """
    stored = stored_golden(layout, image.digest)
    if not stored:
        raise IntegrityError(
            f"image {image.name}@{image.digest} has no golden manifest in the "
            "image store",
            hint="build the image with zerodrift build, which stores one",
            reference="golden-manifest-missing",
        )
    if isinstance(verifier, GoldenRootVerifier):
        root = verifier.golden_root(image, environment)
        for manifest in stored:
            if manifest.merkle_root == root:
                return manifest, True
        raise VerificationError(
            f"no stored golden manifest of {image.name} has the attested "
            f"Merkle root {root[:16]}…",
            hint="the image store was altered after the build; rebuild",
            reference="golden-manifest-root-mismatch",
        )
    if isinstance(verifier, UnsafeNoVerification):
        return stored[0], False
    raise VerificationError(
        f"the golden manifest of {image.name}@{image.digest} cannot be trusted: "
        "no image verifier is configured",
        hint="build and sign images with zerodrift",
        reference="image-unverified",
    )


# --- Reading the runtime's storage ----------------------------------------------


def layer_folders(client: Any, image_id: str) -> list[str]:
    """The folders holding an image's layers in podman's storage, bottom first.

    Args:
        client: The podman API client.
        image_id: The image's id or name.

    Raises:
        OperationalError: The image is not in the storage, or its storage
            driver is not overlay.
    """
    info = client.json("GET", f"/images/{quote_name(image_id)}/json")
    driver = info.get("GraphDriver") or {}
    data = driver.get("Data") or {}
    if driver.get("Name") != "overlay" or not data.get("UpperDir"):
        raise OperationalError(
            f"image {image_id[:19]} is stored with the {driver.get('Name')!r} "
            "driver; only overlay storage can be verified",
            hint='set driver = "overlay" in storage.conf',
            reference="image-storage-unsupported",
        )
    lower = [p for p in str(data.get("LowerDir") or "").split(":") if p]
    return [*reversed(lower), str(data["UpperDir"])]


@dataclass
class _Layer:
    """One layer folder as read: its entries (unhashed) and shared inodes."""

    entries: list[Entry]
    inodes: dict[str, tuple[int, int]]


class LayerReader:
    """Reads layer folders into manifest entries; each folder once per run.

    Args:
        workers: Threads hashing files in parallel.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or min(4, os.cpu_count() or 1)
        self._layers: dict[str, _Layer] = {}
        self._hashes: dict[str, tuple[str, int]] = {}
        self.files_hashed = 0
        self.bytes_hashed = 0

    def tree(self, folders: Sequence[str], golden: GoldenManifest) -> list[Entry]:
        """The merged, hashed file tree of layers ``folders`` (bottom first).

        Raises:
            OperationalError: A layer folder cannot be read.
        """
        layers = [self._read(folder) for folder in folders]
        merged = merge_layers(layer.entries for layer in layers)
        where = {}
        for folder, layer in zip(folders, layers, strict=True):
            for entry in layer.entries:
                where[entry.path] = folder
        files = [e for e in merged if e.type == "file"]
        sums = self._hash_all([where[e.path] + e.path for e in files])
        expected = golden.by_path()
        inodes: dict[str, tuple[int, int]] = {}
        for layer in layers:
            inodes.update(layer.inodes)
        tree = [e for e in merged if e.type != "file"]
        for entry in files:
            digest = sums[where[entry.path] + entry.path]
            tree.append(_as_hardlink(replace(entry, sha256=digest), expected, inodes))
        return tree

    def _read(self, folder: str) -> _Layer:
        layer = self._layers.get(folder)
        if layer is None:
            try:
                layer = _read_layer(folder)
            except OSError as exc:
                raise OperationalError(
                    f"cannot read image layer {folder}: {exc.strerror}",
                    hint="run zerodrift as the user that owns podman's storage",
                    reference="image-storage-unreadable",
                ) from exc
            self._layers[folder] = layer
        return layer

    def _hash_all(self, paths: Sequence[str]) -> dict[str, str]:
        todo = [p for p in paths if p not in self._hashes]
        if todo:
            with ThreadPoolExecutor(self.workers) as pool:
                for path, result in zip(todo, pool.map(_hash_file, todo), strict=True):
                    self._hashes[path] = result
                    self.files_hashed += 1
                    self.bytes_hashed += result[1]
        return {p: self._hashes[p][0] for p in paths}


def _hash_file(path: str) -> tuple[str, int]:
    """SHA-256 (hex) and bytes read of a file, without following links."""
    digest = hashlib.sha256()
    size = 0
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            while chunk := handle.read(_READ):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        # Reported as a content mismatch: nothing in an image's storage
        # should be unreadable to its owner.
        return f"unreadable: {exc.strerror}", size
    return digest.hexdigest(), size


def _read_layer(folder: str) -> _Layer:
    """List one layer folder as manifest entries (files not hashed yet).

    Whiteouts become ``.wh.`` entries and opaque folders get a ``.wh..wh..opq``
    entry right after their own, so :func:`merge_layers` applies them.
    """
    entries: list[Entry] = []
    inodes: dict[str, tuple[int, int]] = {}
    stack = [""]
    while stack:
        relative = stack.pop()
        with os.scandir(folder + relative or "/") as listing:
            children = sorted(listing, key=lambda d: d.name)
        for child in children:
            path = f"{relative}/{child.name}"
            info = child.stat(follow_symlinks=False)
            entry = _entry(path, child.path, info)
            if entry is None:  # an overlay whiteout
                gone = f"{relative}/{_WHITEOUT}{child.name}"
                entries.append(Entry(gone, "fifo", 0, 0, 0))
                continue
            entries.append(entry)
            if entry.type == "dir":
                if _opaque(child.path):
                    entries.append(Entry(f"{path}/{_OPAQUE}", "fifo", 0, 0, 0))
                stack.append(path)
            elif entry.type == "file" and info.st_nlink > 1:
                inodes[path] = (info.st_dev, info.st_ino)
    return _Layer(entries, inodes)


def _entry(path: str, full: str, info: os.stat_result) -> Entry | None:
    """The manifest entry for one path on disk; ``None`` for a whiteout."""
    mode = info.st_mode
    kind: EntryType
    size, target, rdev = 0, None, None
    if stat.S_ISREG(mode):
        kind, size = "file", info.st_size
    elif stat.S_ISDIR(mode):
        kind = "dir"
    elif stat.S_ISLNK(mode):
        kind, target = "symlink", os.readlink(full)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        if stat.S_ISCHR(mode) and info.st_rdev == 0:
            return None
        kind = "char" if stat.S_ISCHR(mode) else "block"
        rdev = (os.major(info.st_rdev), os.minor(info.st_rdev))
    else:
        # FIFOs, and sockets, which no image layer can carry: both differ
        # from anything a golden manifest lists as a file.
        kind = "fifo"
    return Entry(
        path, kind, stat.S_IMODE(mode), info.st_uid, info.st_gid,
        size, None, target, rdev, _xattrs(full),
    )  # fmt: skip


def _xattrs(path: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    found = {}
    for name in names:
        if name in SECURITY_XATTRS:
            with contextlib.suppress(OSError):
                found[name] = os.getxattr(path, name, follow_symlinks=False)
    return found


def _opaque(path: str) -> bool:
    for name in _OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError as exc:
            if exc.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EPERM):
                raise
    return False


def _as_hardlink(
    entry: Entry, expected: Mapping[str, Entry], inodes: Mapping[str, tuple[int, int]]
) -> Entry:
    """Describe a file as the manifest does when it is a hard link there.

    A tar archive stores the second name of a file as a link to the first;
    on disk both are equal. When the manifest says ``path`` is a hard link
    to ``target`` and both names share one inode on disk, it is one.
    """
    want = expected.get(entry.path)
    if (
        want is not None
        and want.type == "hardlink"
        and want.target is not None
        and entry.path in inodes
        and inodes.get(want.target) == inodes[entry.path]
    ):
        return replace(entry, type="hardlink", target=want.target)
    return entry


# --- The check ------------------------------------------------------------------


def verify_images(
    uses: Iterable[ImageUse],
    *,
    golden: Callable[[ImageUse], tuple[GoldenManifest, bool]],
    folders: Callable[[ImageUse], list[str]],
    reader: LayerReader | None = None,
) -> ContentCheck:
    """Verify each image's content on disk against its golden manifest.

    Args:
        uses: The distinct images in use.
        golden: Returns an image's trusted golden manifest.
        folders: Returns an image's layer folders, bottom first.
        reader: Reads and hashes layers (one per run).

    Returns:
        One result per image; an image that cannot be verified (no trusted
        golden manifest, storage of another driver or unreadable) carries
        the error instead of a diff.

    Raises:
        OperationalError: The runtime failed.
    """
    started = time.monotonic()
    reader = reader or LayerReader()
    check = ContentCheck()
    for use in uses:
        result = ImageContent(use)
        try:
            manifest, result.signed = golden(use)
            result.merkle_root = manifest.merkle_root
            result.layers = folders(use)
            before = reader.files_hashed
            result.diff = diff(manifest, reader.tree(result.layers, manifest))
            result.files = reader.files_hashed - before
        except (VerificationError, IntegrityError) as exc:
            result.error = exc
        except OperationalError as exc:
            # Storage this check cannot read stays unreadable on the next
            # try: report it. Anything else (podman unreachable) is raised.
            if exc.reference not in _STORAGE_ERRORS:
                raise
            result.error = exc
        check.images.append(result)
    check.files_hashed = reader.files_hashed
    check.bytes_hashed = reader.bytes_hashed
    check.seconds = time.monotonic() - started
    return check


def content_findings(
    check: ContentCheck, *, environment: str, now: str
) -> list[Finding]:
    """Turn the image results into findings (nothing for intact images)."""
    found = []
    for result in check.images:
        use = result.use
        base = {
            "image": use.name,
            "digest": use.digest,
            "nodes": list(use.nodes),
            "services": list(use.services),
        }
        if result.error is not None:
            found.append(
                _finding(
                    "image-unverified",
                    Severity.CRITICAL,
                    use,
                    f"the content of image {use.name} ({use.digest[:19]}…) cannot "
                    f"be verified: {result.error.message}",
                    now=now,
                    environment=environment,
                    details={
                        **base,
                        "reference": result.error.reference,
                        "error": result.error.message,
                    },
                )
            )
            continue
        if result.diff is None or result.diff.is_empty:
            continue
        changes = _changes(result.diff)
        found.append(
            _finding(
                "image-tampered",
                Severity.CRITICAL,
                use,
                f"{len(changes)} path(s) of image {use.name} ({use.digest[:19]}…) "
                "in the runtime's storage differ from its "
                f"{'signed ' if result.signed else ''}golden manifest "
                f"(first: {changes[0]['path']}), used by {len(use.nodes)} node(s)",
                now=now,
                environment=environment,
                details={
                    **base,
                    "baseline": "signed golden manifest"
                    if result.signed
                    else "unsigned golden manifest (image verification is off)",
                    "merkle_root": result.merkle_root,
                    "layers": result.layers,
                    "count": len(changes),
                    "changes": changes[:_MAX_LISTED],
                    "remedy": REMEDY,
                },
            )
        )
    return found


def _changes(found: Diff) -> list[dict[str, Any]]:
    changes: list[dict[str, Any]] = []
    for change in found.changed:
        changes.append(
            {
                "path": change.path,
                "kind": "changed",
                "attributes": list(change.attributes),
                "expected": {a: _show(change.expected, a) for a in change.attributes},
                "actual": {a: _show(change.actual, a) for a in change.attributes},
            }
        )
    changes += [{"path": e.path, "kind": "added", "type": e.type} for e in found.added]
    changes += [
        {"path": e.path, "kind": "deleted", "type": e.type} for e in found.removed
    ]
    return sorted(changes, key=lambda c: str(c["path"]).encode("utf-8", "replace"))


def _show(entry: Entry, attribute: str) -> Any:
    value = entry.to_dict().get(attribute)
    if attribute == "mode" and isinstance(value, int):
        return f"{value:04o}"
    return value


def _finding(
    kind: str,
    severity: Severity,
    use: ImageUse,
    summary: str,
    *,
    now: str,
    environment: str,
    details: dict[str, Any],
) -> Finding:
    return Finding(
        source=SOURCE,
        kind=kind,
        severity=severity,
        subject=f"image:{use.name}@{use.digest}",
        summary=summary,
        found_at=now,
        details=details,
        csf=CSF[kind],
        environment=environment,
    )
