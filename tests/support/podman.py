"""A private podman API service for one test session (or one benchmark)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
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
        # conmon runs "podman container cleanup" on this storage when a
        # container dies: let those finish. conmon processes of exec sessions
        # would only do the same after a five-minute delay (recreating the
        # storage we are about to delete): they belong to this session's
        # podman and are ended now.
        for pid, cmdline in _processes_using(folder):
            if b"conmon" in cmdline and b"--exec-attach" in cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while _processes_using(folder) and time.monotonic() < deadline:
            time.sleep(0.1)
        for _ in range(3):
            mounts = [
                line.split()[1]
                for line in Path("/proc/mounts").read_text().splitlines()
                if line.split()[1].startswith(str(folder))
            ]
            if not mounts:
                break
            for mount in sorted(mounts, reverse=True):
                subprocess.run(
                    ["umount", "-l", mount], capture_output=True, check=False
                )
        shutil.rmtree(folder, ignore_errors=True)


def _processes_using(folder: Path) -> list[tuple[int, bytes]]:
    """Processes whose command line names ``folder``, with that command line."""
    marker = str(folder).encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in cmdline:
            found.append((int(proc.name), cmdline))
    return found
