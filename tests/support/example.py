"""The example project, initialised, committed with its lock and built once.

Building the example needs mmdebstrap and the Debian mirror (a few seconds);
the ``example`` fixture (registered in tests/integration/conftest.py) does it
once per test session, and tests work on copies or clones of the result.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
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


def build_example(tmp_path_factory: pytest.TempPathFactory) -> Example:
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
