"""Run ``zerodrift`` as a separate process, optionally in a private namespace."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ZERODRIFT = [sys.executable, "-m", "zerodrift"]


def can_unshare() -> bool:
    """Whether this process may create mount and network namespaces."""
    return os.getuid() == 0 and shutil.which("unshare") is not None


def run(
    *argv: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``zerodrift argv...`` and capture its output."""
    return subprocess.run(
        [*ZERODRIFT, *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def run_offline(
    *argv: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run zerodrift in a new network namespace: no interface but a down loopback."""
    return subprocess.run(
        ["unshare", "--net", "--", *ZERODRIFT, *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def run_with_read_only(
    folder: Path, *argv: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run zerodrift while ``folder`` is a read-only bind mount.

    The mount lives in a private mount namespace, so it disappears with the
    process and nothing else on the machine sees it. Root ignores file modes,
    which is why a mode of 0555 would not make the folder read-only here.
    """
    command = " ".join(shlex.quote(part) for part in [*ZERODRIFT, *argv])
    target = shlex.quote(str(folder))
    script = f"mount --bind -o ro {target} {target} && exec {command}"
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
