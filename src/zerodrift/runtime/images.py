"""Where node images come from, and the check every image passes before use.

The reconciler never pulls by tag. It asks an :class:`ImageSource` to resolve
an image *name* to a manifest digest once, plans with that digest, and hands
the runtime that exact digest. An :class:`ImageVerifier` is called with the
digest before any node uses it; the default refuses everything until a real
verifier (signatures and trust policy) is configured, so forgetting to wire
one fails closed. :class:`UnsafeNoVerification` exists for tests and says so.

:class:`OciLayoutSource` reads an OCI image layout (image-spec 1.1: an
``oci-layout`` marker, ``index.json`` and ``blobs/sha256/...``) in which each
image is a manifest annotated with ``org.opencontainers.image.ref.name``.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from zerodrift.errors import (
    ConfigError,
    IntegrityError,
    VerificationError,
)
from zerodrift.oci.layout import Layout

__all__ = [
    "REF_NAME_ANNOTATION",
    "ImageSource",
    "ImageVerifier",
    "OciLayoutSource",
    "RefuseUnverified",
    "ResolvedImage",
    "UnsafeNoVerification",
    "runtime_ref",
]

REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
_MANIFEST_TYPES = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
}


@dataclass(frozen=True)
class ResolvedImage:
    """An image name resolved to the one manifest digest that will run."""

    name: str
    digest: str


@runtime_checkable
class ImageSource(Protocol):
    """Resolves image names to digests and exports exact digests."""

    def resolve(self, name: str) -> ResolvedImage:
        """Return the digest the store holds for ``name``.

        Raises:
            ConfigError: The store has no image of that name.
        """

    def export(self, digest: str) -> Iterator[bytes]:
        """Stream an OCI archive (tar of a layout) holding exactly ``digest``.

        Raises:
            IntegrityError: A blob is missing or does not match its digest.
        """


@runtime_checkable
class ImageVerifier(Protocol):
    """Decides whether an image may run in an environment."""

    def verify(self, image: ResolvedImage, environment: str) -> None:
        """Return quietly if ``image`` is trusted for ``environment``.

        Raises:
            VerificationError: The image is unsigned, signed by an untrusted
                key, or its attestations do not match.
        """


class RefuseUnverified:
    """The default verifier: refuses every image until a real one is set."""

    def verify(self, image: ResolvedImage, environment: str) -> None:
        """Refuse ``image``.

        Raises:
            VerificationError: Always.
        """
        raise VerificationError(
            f"image {image.name}@{image.digest} cannot be verified for "
            f"environment {environment!r}: no image verifier is configured",
            hint="build and sign images with zerodrift so their signatures "
            "can be checked against the spec's trust policy",
            reference="image-unverified",
        )


class UnsafeNoVerification:
    """Accepts every image without checking anything.

    Only for tests of the runtime itself, whose images are built by the
    test fixtures without signatures. Never use it for a real environment.

    Args:
        reason: Why verification is skipped; recorded with every use.
    """

    def __init__(self, reason: str) -> None:
        if not reason.strip():
            raise ValueError("UnsafeNoVerification needs a reason")
        self.reason = reason
        self.accepted: list[ResolvedImage] = []

    def verify(self, image: ResolvedImage, environment: str) -> None:
        """Accept ``image`` unchecked and remember that it was accepted."""
        del environment
        self.accepted.append(image)


class OciLayoutSource:
    """Images in a local OCI image layout folder (``.zerodrift/store``).

    Args:
        root: The layout folder.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _layout(self) -> Layout:
        if not (self.root / "index.json").exists():
            raise ConfigError(
                f"no image store at {self.root}",
                hint="build the images first (zerodrift build)",
                reference="image-store-missing",
            )
        return Layout.open(self.root)

    def names(self) -> dict[str, str]:
        """Return every image name in the store with its manifest digest."""
        return {
            name: descriptor.digest
            for name, descriptor in self._layout().tags().items()
            if descriptor.media_type in _MANIFEST_TYPES
        }

    def resolve(self, name: str) -> ResolvedImage:
        """Return the manifest digest of image ``name``.

        Raises:
            ConfigError: The store holds no image of that name.
        """
        digest = self.names().get(name)
        if digest is None:
            raise ConfigError(
                f"image {name!r} is not in the store {self.root}",
                hint=f"build it first (zerodrift build {name})",
                reference="image-missing",
            )
        return ResolvedImage(name, digest)

    def blob_path(self, digest: str) -> Path:
        """The file holding blob ``digest``."""
        return Layout(self.root).blob_path(digest)

    def _read_json_blob(self, digest: str) -> tuple[bytes, dict[str, Any]]:
        raw = Layout(self.root).read_blob(digest)
        return raw, json.loads(raw)

    def export(self, digest: str) -> Iterator[bytes]:
        """Stream an OCI archive with exactly manifest ``digest`` and its blobs.

        The archive's index names the manifest by its digest so the runtime
        stores it under a predictable name (see :func:`runtime_ref`).

        Raises:
            IntegrityError: The manifest or config is missing or corrupt.
        """
        manifest_raw, manifest = self._read_json_blob(digest)
        self._read_json_blob(manifest["config"]["digest"])
        blobs = [digest, manifest["config"]["digest"]] + [
            layer["digest"] for layer in manifest.get("layers", [])
        ]
        index = {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": manifest.get(
                        "mediaType", "application/vnd.oci.image.manifest.v1+json"
                    ),
                    "digest": digest,
                    "size": len(manifest_raw),
                    "annotations": {REF_NAME_ANNOTATION: runtime_ref(digest)},
                }
            ],
        }
        return _tar_stream(
            {
                "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
                "index.json": json.dumps(index).encode(),
            },
            [(f"blobs/sha256/{d.partition(':')[2]}", self.blob_path(d)) for d in blobs],
        )


def runtime_ref(digest: str) -> str:
    """The name under which a digest is stored in the runtime's image store."""
    return f"localhost/zerodrift/image:{digest.partition(':')[2][:32]}"


_BLOCK = 512
_READ = 1 << 20


def _member(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    return info.tobuf(format=tarfile.PAX_FORMAT)


def _padding(size: int) -> bytes:
    return b"\0" * (-size % _BLOCK)


def _tar_stream(
    small: dict[str, bytes], files: list[tuple[str, Path]]
) -> Iterator[bytes]:
    """Yield a tar archive in pieces of at most 1 MiB of file content."""
    for name, data in small.items():
        yield _member(name, len(data)) + data + _padding(len(data))
    seen = set()
    for name, path in files:
        if name in seen:
            continue
        seen.add(name)
        try:
            blob = path.open("rb")
        except OSError as exc:
            raise IntegrityError(
                f"blob {path.name} is missing from the image store",
                reference="image-blob-missing",
            ) from exc
        with blob:
            size = os.fstat(blob.fileno()).st_size
            yield _member(name, size)
            while chunk := blob.read(_READ):
                yield chunk
            yield _padding(size)
    yield b"\0" * (2 * _BLOCK)
