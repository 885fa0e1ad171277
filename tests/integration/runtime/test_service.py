"""The private podman service zerodrift starts for ``podman://``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.podman

_CHILD = """
import sys, time
from pathlib import Path
from zerodrift.runtime.service import PodmanService
service = PodmanService(Path(sys.argv[1]), private_storage=True)
service.start()
print(service.process.pid, service.socket_path, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    return state != "Z"


def test_service_dies_with_a_killed_zerodrift(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path / "podman")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        pid_text, socket = child.stdout.readline().split()
        service_pid = int(pid_text)
        assert _alive(service_pid)
        assert Path(socket).name == f"podman-{child.pid}.sock"
        child.send_signal(signal.SIGKILL)
        child.wait()
        deadline = time.monotonic() + 10
        while _alive(service_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(service_pid)
    finally:
        child.kill()
        for line in reversed(Path("/proc/mounts").read_text().splitlines()):
            if line.split()[1].startswith(str(tmp_path)):
                subprocess.run(["umount", "-l", line.split()[1]], check=False)
