"""OCI: image layout store and the pure descriptor/manifest models.

:mod:`zerodrift.oci.descriptor` holds pure helpers (no IO);
:mod:`zerodrift.oci.layout` reads and writes an image layout on disk.
"""

from zerodrift.oci.descriptor import (
    ANNOTATION_REF_NAME,
    MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_EMPTY,
    MEDIA_TYPE_INDEX,
    MEDIA_TYPE_LAYER,
    MEDIA_TYPE_LAYER_GZIP,
    MEDIA_TYPE_LAYER_ZSTD,
    MEDIA_TYPE_MANIFEST,
    Descriptor,
    artifact_manifest,
    descriptor_for,
    digest_bytes,
    encode,
    image_index,
    image_manifest,
    parse_digest,
)
from zerodrift.oci.layout import BlobWriter, Layout, LayoutReport, VerifyingReader

__all__ = [
    "ANNOTATION_REF_NAME",
    "MEDIA_TYPE_CONFIG",
    "MEDIA_TYPE_EMPTY",
    "MEDIA_TYPE_INDEX",
    "MEDIA_TYPE_LAYER",
    "MEDIA_TYPE_LAYER_GZIP",
    "MEDIA_TYPE_LAYER_ZSTD",
    "MEDIA_TYPE_MANIFEST",
    "BlobWriter",
    "Descriptor",
    "Layout",
    "LayoutReport",
    "VerifyingReader",
    "artifact_manifest",
    "descriptor_for",
    "digest_bytes",
    "encode",
    "image_index",
    "image_manifest",
    "parse_digest",
]
