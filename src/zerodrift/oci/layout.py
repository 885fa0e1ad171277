"""An OCI image layout on disk (image spec 1.1): zerodrift's artifact store.

A layout is a folder with ``oci-layout``, ``index.json`` and
``blobs/sha256/<hex>``. This module is the only code that writes one.

Invariants:

- Blobs are content-addressed and written atomically: bytes go to a
  temporary file under ``.ingest/``, are hashed while written, fsynced, and
  renamed to their digest only if the digest is right. A blob file therefore
  either does not exist or is complete.
- Every read of a blob checks its digest; a flipped bit raises
  :class:`~zerodrift.errors.IntegrityError`, never returns data.
- ``index.json`` is replaced atomically, under an exclusive lock on the
  layout folder, and only after every blob a new entry references is on
  disk. A build killed at any point leaves no tag that points at missing or
  partial content (unreferenced blobs may remain; they are harmless).
- Referrers (OCI 1.1): artifacts such as signatures or golden manifests are
  manifests with a ``subject``; they are listed untagged in ``index.json`` so
  they stay reachable, and :meth:`Layout.referrers` finds them by subject.

Example:
    >>> layout = Layout.open_or_create(tmp / "store")          # doctest: +SKIP
    >>> layer = layout.write_blob(tar_gz, MEDIA_TYPE_LAYER_GZIP)  # doctest: +SKIP
    >>> image = layout.add_image(config, [layer], tag="web")   # doctest: +SKIP
    >>> layout.resolve("web") == image                         # doctest: +SKIP
    True
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from zerodrift._internal.atomic import fsync_dir, write_atomic
from zerodrift.errors import ConfigError, IntegrityError, OperationalError
from zerodrift.oci.descriptor import (
    ANNOTATION_REF_NAME,
    EMPTY_JSON,
    MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_EMPTY,
    MEDIA_TYPE_INDEX,
    MEDIA_TYPE_MANIFEST,
    Descriptor,
    artifact_manifest,
    descriptor_for,
    encode,
    image_index,
    image_manifest,
    parse_digest,
)

__all__ = ["BlobWriter", "Layout", "LayoutReport", "VerifyingReader"]

LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
LAYOUT_VERSION = "1.0.0"
_INGEST_DIR = ".ingest"
_CHUNK = 1 << 20
# Manifests, configs and indexes are small; refuse to load huge JSON blobs.
MAX_DOCUMENT_SIZE = 4 << 20
_MANIFEST_TYPES = (MEDIA_TYPE_MANIFEST, MEDIA_TYPE_INDEX)


@dataclass(frozen=True)
class LayoutReport:
    """What :meth:`Layout.check` looked at.

    Attributes:
        blobs: Number of blobs whose digest was recomputed.
        bytes: Their total size.
        manifests: Number of manifests reachable from ``index.json``.
        tags: The tags found, sorted.
    """

    blobs: int
    bytes: int
    manifests: int
    tags: tuple[str, ...]


class BlobWriter:
    """A blob being written; hashes and counts bytes as they arrive.

    Get one from :meth:`Layout.blob_writer`. After the ``with`` block ends
    without error, :attr:`descriptor` describes the stored blob.
    """

    def __init__(self, handle: IO[bytes], media_type: str) -> None:
        self._handle = handle
        self._hash = hashlib.sha256()
        self._media_type = media_type
        self.size = 0
        self._descriptor: Descriptor | None = None

    def write(self, data: bytes) -> int:
        """Append ``data`` to the blob."""
        self._hash.update(data)
        self._handle.write(data)
        self.size += len(data)
        return len(data)

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of what was written so far."""
        return "sha256:" + self._hash.hexdigest()

    @property
    def descriptor(self) -> Descriptor:
        """The stored blob, once the ``with`` block has committed it."""
        if self._descriptor is None:
            raise RuntimeError("the blob is not committed yet")
        return self._descriptor

    def _commit(self, annotations: Mapping[str, str] | None) -> Descriptor:
        self._descriptor = Descriptor(
            self._media_type, self.digest, self.size, dict(annotations or {})
        )
        return self._descriptor


class VerifyingReader:
    """A read-only blob stream that checks size and digest when it reaches EOF.

    Data read before EOF is not yet verified: consumers must read to the end
    (or call :meth:`verify_rest`) before trusting what they derived from it.
    """

    def __init__(self, handle: IO[bytes], digest: str, size: int | None) -> None:
        self._handle = handle
        self._digest = digest
        self._size = size
        self._hash = hashlib.sha256()
        self._read = 0
        self._done = False

    def read(self, n: int = -1) -> bytes:
        """Read up to ``n`` bytes; at EOF, raise if the blob does not match.

        Raises:
            IntegrityError: The blob's digest or size is not the expected one.
        """
        data = self._handle.read(n)
        self._hash.update(data)
        self._read += len(data)
        if self._size is not None and self._read > self._size:
            raise _mismatch(self._digest, f"longer than its {self._size} bytes")
        if not data or n < 0:
            self._finish()
        return data

    def verify_rest(self) -> None:
        """Read whatever is left and check the digest.

        Raises:
            IntegrityError: The blob's digest or size is not the expected one.
        """
        while self.read(_CHUNK):
            pass
        self._finish()

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        actual = "sha256:" + self._hash.hexdigest()
        if self._size is not None and self._read != self._size:
            raise _mismatch(self._digest, f"{self._read} bytes, not {self._size}")
        if actual != self._digest:
            raise _mismatch(self._digest, f"content hashes to {actual}")

    def close(self) -> None:
        """Close the underlying file."""
        self._handle.close()


def _mismatch(digest: str, detail: str) -> IntegrityError:
    return IntegrityError(
        f"blob {digest} is corrupt: {detail}",
        hint="the store was modified or damaged; rebuild or pull the image again",
        reference="blob-digest-mismatch",
    )


def _missing(digest: str, where: str) -> IntegrityError:
    return IntegrityError(
        f"blob {digest} is missing ({where})",
        hint="the layout is incomplete (truncated copy?); rebuild or pull again",
        reference="blob-missing",
    )


class Layout:
    """An OCI image layout folder. Create with :meth:`create` or :meth:`open`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    # --- Opening -------------------------------------------------------------

    @classmethod
    def create(cls, path: Path) -> Layout:
        """Create an empty layout at ``path`` (the folder may exist, empty).

        Raises:
            ConfigError: ``path`` already holds a layout or other files.
            OperationalError: The folder cannot be written.
        """
        path = Path(path)
        if path.exists() and any(path.iterdir()):
            raise ConfigError(
                f"{path} is not empty",
                hint="choose an empty folder, or open the existing layout",
                reference="layout-exists",
            )
        try:
            (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _io_error(path, exc) from exc
        write_atomic(path / INDEX_FILE, encode(image_index([])))
        # oci-layout comes last: its presence marks a complete, usable layout.
        layout_doc = {"imageLayoutVersion": LAYOUT_VERSION}
        write_atomic(path / LAYOUT_FILE, encode(layout_doc))
        return cls(path)

    @classmethod
    def open(cls, path: Path) -> Layout:
        """Open an existing layout, checking its marker file and index.

        Raises:
            IntegrityError: ``path`` is not a complete OCI layout (truncated
                or damaged).
        """
        layout = cls(Path(path))
        layout._check_marker()
        layout.manifests()
        return layout

    @classmethod
    def open_or_create(cls, path: Path) -> Layout:
        """Open the layout at ``path``, creating it if the folder is absent or empty.

        Raises:
            IntegrityError: An existing layout is damaged.
            OperationalError: The folder cannot be written.
        """
        path = Path(path)
        if not path.exists() or not any(path.iterdir()):
            return cls.create(path)
        return cls.open(path)

    def _check_marker(self) -> None:
        try:
            data = json.loads((self.path / LAYOUT_FILE).read_bytes())
        except FileNotFoundError as exc:
            raise IntegrityError(
                f"{self.path} is not an OCI image layout (no {LAYOUT_FILE})",
                hint="the layout is truncated or the path is wrong",
                reference="layout-truncated",
            ) from exc
        except (OSError, ValueError) as exc:
            raise IntegrityError(
                f"{self.path / LAYOUT_FILE} is unreadable: {exc}",
                reference="layout-truncated",
            ) from exc
        if not isinstance(data, dict) or data.get("imageLayoutVersion") != "1.0.0":
            raise IntegrityError(
                f"{self.path / LAYOUT_FILE} has an unknown layout version",
                hint=f"expected imageLayoutVersion {LAYOUT_VERSION}",
                reference="layout-version",
            )

    # --- Blobs ---------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        """Where the blob ``digest`` lives (whether or not it exists).

        Raises:
            IntegrityError: ``digest`` is malformed.
        """
        return self.path / "blobs" / "sha256" / parse_digest(digest)

    def has_blob(self, digest: str) -> bool:
        """Whether a blob file exists for ``digest`` (its content is not checked)."""
        return self.blob_path(digest).is_file()

    @contextlib.contextmanager
    def blob_writer(
        self,
        media_type: str,
        *,
        expected_digest: str | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> Iterator[BlobWriter]:
        """Stream a new blob into the store.

        The blob appears under its digest only when the block ends without
        error and, if ``expected_digest`` is given, the digest matches.

        Raises:
            IntegrityError: The content does not hash to ``expected_digest``.
            OperationalError: The store cannot be written.
        """
        if expected_digest is not None:
            parse_digest(expected_digest)
        ingest = self.path / _INGEST_DIR
        try:
            ingest.mkdir(exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix="blob-", dir=ingest)
        except OSError as exc:
            raise _io_error(ingest, exc) from exc
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                writer = BlobWriter(handle, media_type)
                yield writer
                handle.flush()
                os.fsync(handle.fileno())
            if expected_digest is not None and writer.digest != expected_digest:
                raise _mismatch(expected_digest, f"content hashes to {writer.digest}")
            os.chmod(tmp, 0o644)
            final = self.blob_path(writer.digest)
            os.replace(tmp, final)
            fsync_dir(final.parent)
            writer._commit(annotations)
        except OSError as exc:
            raise _io_error(self.path, exc) from exc
        finally:
            tmp.unlink(missing_ok=True)

    def discard_stale_ingest(self, *, older_than: float = 86400.0) -> int:
        """Delete partial blobs left in ``.ingest/`` by writers killed long ago.

        Files younger than ``older_than`` seconds are kept: they may belong to
        a writer that is still running.

        Returns:
            How many files were deleted.
        """
        ingest = self.path / _INGEST_DIR
        if not ingest.is_dir():
            return 0
        cutoff = time.time() - older_than
        removed = 0
        for path in ingest.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed

    def write_blob(
        self,
        data: bytes,
        media_type: str,
        *,
        annotations: Mapping[str, str] | None = None,
    ) -> Descriptor:
        """Store ``data`` and return its descriptor (idempotent).

        Raises:
            OperationalError: The store cannot be written.
        """
        with self.blob_writer(media_type, annotations=annotations) as writer:
            writer.write(data)
        return writer.descriptor

    @contextlib.contextmanager
    def open_blob(
        self, digest: str, *, size: int | None = None
    ) -> Iterator[VerifyingReader]:
        """Open a blob for streaming; its digest is checked at EOF.

        Raises:
            IntegrityError: The blob is missing, or (at EOF) corrupt.
        """
        path = self.blob_path(digest)
        try:
            handle = path.open("rb")
        except FileNotFoundError as exc:
            raise _missing(digest, f"no {path}") from exc
        except OSError as exc:
            raise _io_error(path, exc) from exc
        reader = VerifyingReader(handle, digest, size)
        try:
            yield reader
        finally:
            reader.close()

    def read_blob(
        self, target: str | Descriptor, *, max_size: int | None = None
    ) -> bytes:
        """Read a whole blob, verified against its digest (and size, if known).

        Args:
            target: A digest, or a descriptor (whose size is then checked too).
            max_size: Refuse blobs larger than this many bytes.

        Raises:
            IntegrityError: The blob is missing, corrupt, or too large.
        """
        digest, size = _digest_and_size(target)
        path = self.blob_path(digest)
        if max_size is not None:
            with contextlib.suppress(FileNotFoundError):
                actual = path.stat().st_size
                if actual > max_size:
                    raise IntegrityError(
                        f"blob {digest} is {actual} bytes, over the {max_size} limit",
                        reference="blob-too-large",
                    )
        with self.open_blob(digest, size=size) as reader:
            return reader.read()

    def read_json(self, target: str | Descriptor) -> dict[str, Any]:
        """Read a verified JSON blob (manifest, index, config).

        Raises:
            IntegrityError: The blob is missing, corrupt, or not a JSON object.
        """
        data = self.read_blob(target, max_size=MAX_DOCUMENT_SIZE)
        try:
            document = json.loads(data)
        except ValueError as exc:
            raise IntegrityError(
                f"blob {_digest_and_size(target)[0]} is not valid JSON",
                reference="oci-document-malformed",
            ) from exc
        if not isinstance(document, dict):
            raise IntegrityError(
                f"blob {_digest_and_size(target)[0]} is not a JSON object",
                reference="oci-document-malformed",
            )
        return document

    # --- Index and tags --------------------------------------------------------

    def manifests(self) -> list[Descriptor]:
        """The descriptors listed in ``index.json``, in file order.

        Raises:
            IntegrityError: ``index.json`` is missing, truncated or malformed.
        """
        path = self.path / INDEX_FILE
        try:
            document = json.loads(path.read_bytes())
        except FileNotFoundError as exc:
            raise IntegrityError(
                f"{path} is missing",
                hint="the layout is truncated; rebuild or pull again",
                reference="layout-truncated",
            ) from exc
        except (OSError, ValueError) as exc:
            raise IntegrityError(
                f"{path} is not valid JSON (truncated?)",
                hint="the layout is damaged; rebuild or pull again",
                reference="layout-truncated",
            ) from exc
        entries = document.get("manifests") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise IntegrityError(
                f"{path} has no manifests list", reference="layout-truncated"
            )
        return [Descriptor.from_dict(entry) for entry in entries]

    def tags(self) -> dict[str, Descriptor]:
        """Map each tag (``org.opencontainers.image.ref.name``) to its manifest.

        Raises:
            IntegrityError: ``index.json`` is damaged.
        """
        return {d.ref_name: d for d in self.manifests() if d.ref_name is not None}

    def resolve(self, ref: str) -> Descriptor:
        """Find a manifest by tag or by ``sha256:`` digest.

        Raises:
            ConfigError: Nothing in the layout has that tag or digest.
            IntegrityError: The layout is damaged.
        """
        entries = self.manifests()
        if ref.startswith("sha256:"):
            parse_digest(ref)
            for entry in entries:
                if entry.digest == ref:
                    return Descriptor(
                        entry.media_type, entry.digest, entry.size,
                        artifact_type=entry.artifact_type,
                    )  # fmt: skip
            if self.has_blob(ref):
                raw = self.read_blob(ref, max_size=MAX_DOCUMENT_SIZE)
                document = _parse_manifest(raw)
                return descriptor_for(raw, str(document["mediaType"]))
        else:
            for entry in entries:
                if entry.ref_name == ref:
                    return entry
        known = sorted(d.ref_name for d in entries if d.ref_name)
        raise ConfigError(
            f"no image {ref!r} in the store {self.path}",
            hint=("known tags: " + ", ".join(known)) if known else "the store is empty",
            reference="image-not-found",
        )

    def store_manifest(self, manifest: Mapping[str, Any] | bytes) -> Descriptor:
        """Store a manifest (or index) blob without listing it in ``index.json``.

        Raw bytes are stored unchanged (so pulled manifests keep their
        digest); a mapping is serialised canonically. Every blob the manifest
        references must already be in the store. Use :meth:`tag` (or
        :meth:`add_manifest`) to make it reachable.

        Raises:
            IntegrityError: A referenced blob is missing or the document is
                not an OCI manifest or index.
            OperationalError: The store cannot be written.
        """
        raw = manifest if isinstance(manifest, bytes) else encode(manifest)
        document = _parse_manifest(raw)
        for child in _children(document):
            if not self.has_blob(child.digest):
                raise _missing(child.digest, "referenced by the new manifest")
        stored = self.write_blob(raw, str(document["mediaType"]))
        artifact_type = document.get("artifactType")
        return Descriptor(
            stored.media_type,
            stored.digest,
            stored.size,
            artifact_type=artifact_type if isinstance(artifact_type, str) else None,
        )

    def tag(
        self,
        name: str | None,
        descriptor: Descriptor,
        *,
        annotations: Mapping[str, str] | None = None,
    ) -> Descriptor:
        """List a stored manifest in ``index.json``, under tag ``name`` if given.

        An existing tag of that name moves. This single atomic rename of
        ``index.json`` is what publishes an image.

        Raises:
            IntegrityError: The manifest blob is not in the store.
            OperationalError: The store cannot be written.
        """
        if not self.has_blob(descriptor.digest):
            raise _missing(descriptor.digest, "manifest to tag")
        entry_annotations = dict(annotations or {})
        if name is not None:
            entry_annotations[ANNOTATION_REF_NAME] = name
        entry = Descriptor(
            descriptor.media_type,
            descriptor.digest,
            descriptor.size,
            entry_annotations,
            descriptor.artifact_type,
        )
        self._update_index(entry)
        return entry

    def add_manifest(
        self,
        manifest: Mapping[str, Any] | bytes,
        *,
        tag: str | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> Descriptor:
        """Store a manifest (or index) and list it in ``index.json``.

        Args:
            manifest: The manifest document or its exact bytes.
            tag: Tag to point at it; an existing tag of that name moves.
            annotations: Extra annotations on the index entry.

        Returns:
            The manifest's descriptor as listed in the index.

        Raises:
            IntegrityError: A referenced blob is missing or the document is
                not an OCI manifest or index.
            OperationalError: The store cannot be written.
        """
        return self.tag(tag, self.store_manifest(manifest), annotations=annotations)

    def add_image(
        self,
        config: Mapping[str, Any],
        layers: Sequence[Descriptor],
        *,
        tag: str | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> Descriptor:
        """Store an image config and manifest for ``layers`` (already stored).

        Raises:
            IntegrityError: A layer blob is missing.
            OperationalError: The store cannot be written.
        """
        config_desc = self.write_blob(encode(config), MEDIA_TYPE_CONFIG)
        manifest = image_manifest(config_desc, layers, annotations=annotations)
        return self.add_manifest(manifest, tag=tag)

    def add_artifact(
        self,
        subject: Descriptor,
        artifact_type: str,
        payloads: Sequence[tuple[bytes, str]],
        *,
        annotations: Mapping[str, str] | None = None,
    ) -> Descriptor:
        """Store an artifact that refers to ``subject`` (an OCI 1.1 referrer).

        Args:
            subject: The manifest the artifact is about; must be in the store.
            artifact_type: The artifact's media type (``artifactType``).
            payloads: ``(bytes, media type)`` of each payload blob.
            annotations: Manifest annotations.

        Raises:
            IntegrityError: ``subject`` is not in the store.
            OperationalError: The store cannot be written.
        """
        if not self.has_blob(subject.digest):
            raise _missing(subject.digest, "subject of the new artifact")
        self.write_blob(EMPTY_JSON, MEDIA_TYPE_EMPTY)
        blobs = [self.write_blob(data, media) for data, media in payloads]
        manifest = artifact_manifest(
            subject, artifact_type, blobs, annotations=annotations
        )
        return self.add_manifest(manifest)

    def referrers(
        self, digest: str, *, artifact_type: str | None = None
    ) -> list[Descriptor]:
        """Manifests in the index whose ``subject`` is ``digest``.

        Args:
            digest: The subject's manifest digest.
            artifact_type: Only return referrers of this artifact type.

        Raises:
            IntegrityError: A listed manifest is missing or corrupt.
        """
        parse_digest(digest)
        found = []
        for entry in self.manifests():
            if artifact_type is not None and entry.artifact_type != artifact_type:
                continue
            if entry.media_type != MEDIA_TYPE_MANIFEST:
                continue
            subject = self.read_json(entry).get("subject")
            if isinstance(subject, dict) and subject.get("digest") == digest:
                found.append(entry)
        return found

    def untag(self, tag: str) -> None:
        """Remove ``tag`` from the index (blobs stay).

        Raises:
            ConfigError: No such tag.
        """
        self.resolve(tag)
        self._update_index(None, drop_tag=tag)

    def _update_index(
        self, entry: Descriptor | None, drop_tag: str | None = None
    ) -> None:
        with self._locked():
            entries = self.manifests()
            tag = entry.ref_name if entry is not None else drop_tag
            kept = [
                e
                for e in entries
                if not (tag is not None and e.ref_name == tag)
                and not (entry is not None and e == entry)
            ]
            if entry is not None:
                kept.append(entry)
            write_atomic(self.path / INDEX_FILE, encode(image_index(kept)))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # NOTE: the lock is taken on the layout folder itself so that no extra
        # file appears in the layout that other OCI tools might trip over.
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise _io_error(self.path, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # --- Whole-layout check ------------------------------------------------------

    def check(self, ref: str | None = None) -> LayoutReport:
        """Verify the layout, or only what one tag or digest reaches.

        Steps: (1) the ``oci-layout`` marker and ``index.json`` are complete;
        (2) every manifest reachable from the index (or from ``ref``) and
        every blob it references is present with the recorded size and digest;
        (3) without ``ref``, every other blob file also matches its name.

        Raises:
            IntegrityError: On the first missing, truncated or corrupt item.
            ConfigError: ``ref`` is not in the layout.
        """
        # (1) Marker and index.
        self._check_marker()
        roots = [self.resolve(ref)] if ref is not None else self.manifests()

        # (2) The graph reachable from the roots.
        seen: dict[str, int] = {}
        manifests = 0
        pending = list(roots)
        while pending:
            desc = pending.pop()
            if desc.digest in seen:
                continue
            self._verify_blob(desc)
            seen[desc.digest] = desc.size
            if desc.media_type in _MANIFEST_TYPES:
                manifests += 1
                pending.extend(_children(self.read_json(desc)))

        # (3) Every blob on disk, referenced or not.
        if ref is None:
            for path in sorted((self.path / "blobs" / "sha256").iterdir()):
                digest = "sha256:" + path.name
                if digest not in seen:
                    self._verify_blob(Descriptor("", digest, path.stat().st_size))
                    seen[digest] = path.stat().st_size
        tags = tuple(sorted(d.ref_name for d in roots if d.ref_name))
        return LayoutReport(len(seen), sum(seen.values()), manifests, tags)

    def _verify_blob(self, desc: Descriptor) -> None:
        if not self.has_blob(desc.digest):
            raise _missing(desc.digest, f"{desc.media_type or 'blob'}")
        with self.open_blob(desc.digest, size=desc.size) as reader:
            reader.verify_rest()


def _digest_and_size(target: str | Descriptor) -> tuple[str, int | None]:
    if isinstance(target, Descriptor):
        return target.digest, target.size
    return target, None


def _parse_manifest(raw: bytes) -> dict[str, Any]:
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise IntegrityError(
            "manifest is not valid JSON", reference="oci-document-malformed"
        ) from exc
    if not isinstance(document, dict) or document.get("mediaType") not in (
        _MANIFEST_TYPES
    ):
        raise IntegrityError(
            "document is not an OCI image manifest or index (mediaType)",
            reference="oci-document-malformed",
        )
    return document


def _children(document: Mapping[str, Any]) -> list[Descriptor]:
    """Descriptors a manifest or index points at (subject excluded).

    The subject is left out on purpose: a referrer may be stored before or
    without the image it is about (for example when only signatures are
    pulled); :meth:`Layout.add_artifact` checks the subject explicitly.
    """
    children: list[Descriptor] = []
    if isinstance(document.get("config"), dict):
        children.append(Descriptor.from_dict(document["config"]))
    for key in ("layers", "manifests"):
        items = document.get(key) or []
        if not isinstance(items, list):
            raise IntegrityError(
                f"manifest field {key!r} is not a list",
                reference="oci-document-malformed",
            )
        children.extend(Descriptor.from_dict(item) for item in items)
    return children


def _io_error(path: Path, exc: OSError) -> OperationalError:
    return OperationalError(
        f"cannot write the OCI store at {path}: {exc.strerror}",
        hint="check free disk space and permissions",
        reference="store-write-failed",
    )
