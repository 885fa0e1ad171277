"""A private podman API service for one test session (or one benchmark)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from zerodrift.runtime.podman import PodmanService

__all__ = ["running_podman"]


@contextlib.contextmanager
def running_podman() -> Iterator[tuple[str, PodmanService]]:
    """Start podman with private storage, networks and tmp; clean up after.

    Clean-up uses the podman command line with the same configuration, so it
    works even when a test broke the API service: every container is
    removed (which tears down its network namespace), then every private
    network, then the storage's mounts, then the folder.
    """
    folder = Path(tempfile.mkdtemp(prefix="zd-podman-"))
    service = PodmanService(folder, private_storage=True)
    socket = service.start()
    try:
        yield socket, service
    finally:
        env = service.environment()

        def podman(*args: str) -> str:
            done = subprocess.run(
                ["podman", *args],
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=120,
            )
            return done.stdout

        podman("rm", "--all", "--force", "--time", "0")
        for network in podman("network", "ls", "--quiet").split():
            if network != "podman":
                podman("network", "rm", "--force", network)
        podman("volume", "rm", "--all", "--force")
        service.stop()
        mounts = [
            line.split()[1]
            for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1].startswith(str(folder))
        ]
        for mount in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)
