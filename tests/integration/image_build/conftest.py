"""Podman with a private configuration and storage, for image build tests.

Podman gets its own configuration and storage per session, unmounted and
deleted at the end, so parallel test runs do not interfere. The built
example project comes from the shared ``example`` fixture.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from zerodrift.runtime.service import containers_conf_path


@dataclass(frozen=True)
class Podman:
    """A private podman configuration and storage for this session."""

    env: dict[str, str]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run podman (or skopeo, when ``args[0]`` is ``skopeo``)."""
        tool = ["skopeo", *args[1:]] if args[0] == "skopeo" else ["podman", *args]
        return subprocess.run(
            tool, env=self.env, capture_output=True, text=True, check=check, timeout=120
        )


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    """Podman with zerodrift's shipped configuration and its own storage."""
    if shutil.which("podman") is None or shutil.which("runc") is None:
        pytest.skip("podman and runc are not installed")
    base = tmp_path_factory.mktemp("podman")
    # The configuration zerodrift ships for hosts like these (runc, cgroupfs,
    # file events, ulimits within the VM's limits).
    conf = containers_conf_path()
    storage = base / "storage.conf"
    storage.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{base / "graph"}"\n'
        f'runroot = "{base / "run"}"\n'
    )
    env = {
        **os.environ,
        "CONTAINERS_CONF": str(conf),
        "CONTAINERS_STORAGE_CONF": str(storage),
    }
    yield Podman(env)
    subprocess.run(["podman", "rm", "-af"], env=env, capture_output=True, check=False)
    subprocess.run(
        ["podman", "system", "reset", "-f"], env=env, capture_output=True, check=False
    )
    _unmount_below(base)
    shutil.rmtree(base, ignore_errors=True)


def _unmount_below(folder: Path) -> None:
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    points = sorted(
        (line.split()[1] for line in mounts if line.split()[1].startswith(str(folder))),
        reverse=True,
    )
    for point in points:
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
