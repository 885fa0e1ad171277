"""A private podman API service for one test session."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from zerodrift.runtime.podman import PodmanBackend, PodmanService

__all__ = ["running_podman"]


@contextlib.contextmanager
def running_podman() -> Iterator[tuple[str, PodmanService]]:
    """Start podman with private storage; yield its socket; clean up after."""
    folder = Path(tempfile.mkdtemp(prefix="zd-podman-"))
    service = PodmanService(folder, private_storage=True)
    socket = service.start()
    try:
        yield socket, service
    finally:
        backend = PodmanBackend(socket)
        for node in backend.list_nodes():
            with contextlib.suppress(Exception):
                backend.destroy(node.name, timeout=0)
        service.stop()
        overlay = folder / "storage" / "graph" / "overlay"
        subprocess.run(["umount", "-l", str(overlay)], capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)
