"""Runtime backends: the protocol, and Podman through its REST API."""

from zerodrift.runtime.backend import ActualNode, NodeSpec, RuntimeBackend
from zerodrift.runtime.images import (
    ImageSource,
    ImageVerifier,
    OciLayoutSource,
    RefuseUnverified,
    ResolvedImage,
    UnsafeNoVerification,
)

__all__ = [
    "ActualNode",
    "ImageSource",
    "ImageVerifier",
    "NodeSpec",
    "OciLayoutSource",
    "RefuseUnverified",
    "ResolvedImage",
    "RuntimeBackend",
    "UnsafeNoVerification",
]
