"""Fixtures of the detect tests: the runtime tests' podman service and images."""

from __future__ import annotations

from tests.integration.runtime.conftest import (
    _unsafe_verifier,
    backend,
    busybox_layout,
    podman_socket,
    rt_project,
)

__all__ = [
    "_unsafe_verifier",
    "backend",
    "busybox_layout",
    "podman_socket",
    "rt_project",
]
