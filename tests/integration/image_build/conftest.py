"""Shared, expensive fixtures for image build tests: one built example per session.

Building the example needs mmdebstrap and the Debian mirror (a few seconds);
it happens once per session, and every test works on clones of the result.
Podman gets a private configuration and storage per session, unmounted and
deleted at the end, so parallel test runs do not interfere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PASSPHRASE = "build-test-passphrase"
_GIT_ID = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


@dataclass(frozen=True)
class Example:
    """The example project, committed with its lock file and built once."""

    root: Path
    cache: Path
    env: dict[str, str]
    digests: dict[str, str]

    def run(
        self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``zerodrift`` as a user would, in ``cwd`` (default: the project)."""
        return subprocess.run(
            [sys.executable, "-m", "zerodrift", *args],
            cwd=cwd or self.root,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )

    def clone(self, target: Path) -> Path:
        """Clone the project's repository (committed state only) to ``target``."""
        git(self.root.parent, "clone", "-q", str(self.root), str(target), env=self.env)
        return target

    def build_json(self, cwd: Path, *args: str) -> dict[str, Any]:
        """Build in ``cwd`` and return the JSON result (fails on non-zero exit)."""
        done = self.run("build", "--format", "json", *args, cwd=cwd)
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result


def git(cwd: Path, *args: str, env: dict[str, str]) -> str:
    """Run git and return its output."""
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


def digests_of(result: dict[str, Any]) -> dict[str, str]:
    """Image name to manifest digest, from ``build --format json``."""
    return {i["image"]: i["manifest_digest"] for i in result["images"]}


@pytest.fixture(scope="session")
def example(tmp_path_factory: pytest.TempPathFactory) -> Example:
    """The example fleet, initialised, committed with its lock, and built."""
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed")
    base = tmp_path_factory.mktemp("example")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(base / "home"),
        "GIT_CONFIG_GLOBAL": str(base / "home" / ".gitconfig"),
        "ZERODRIFT_KEY_PASSPHRASE": PASSPHRASE,
        "ZERODRIFT_CACHE_DIR": str(base / "cache"),
        "LC_ALL": "C.UTF-8",
        **_GIT_ID,
    }
    (base / "home").mkdir()
    root = base / "shop"
    example = Example(root, base / "cache", env, {})
    done = example.run("init", str(root), cwd=base)
    assert done.returncode == 0, done.stderr
    git(root, "init", "-q", env=env)
    git(root, "add", "-A", env=env)
    git(root, "commit", "-qm", "example fleet", env=env)
    example.build_json(root)
    git(root, "add", "zerodrift.lock", env=env)
    git(root, "commit", "-qm", "lock the Debian base", env=env)
    digests = digests_of(example.build_json(root))
    return Example(root, base / "cache", env, digests)


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
    """Podman with runc, cgroupfs and its own storage (see ENVIRONMENT.md)."""
    if shutil.which("podman") is None or shutil.which("runc") is None:
        pytest.skip("podman and runc are not installed")
    base = tmp_path_factory.mktemp("podman")
    conf = base / "containers.conf"
    conf.write_text(
        "[containers]\n"
        'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
        'default_capabilities = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", '
        '"KILL", "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", '
        '"SYS_CHROOT"]\n'
        "[engine]\n"
        'runtime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
    )
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
