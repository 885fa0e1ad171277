"""Who is acting and on which commit: facts recorded with every audit entry."""

from __future__ import annotations

import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path

# CI systems and the variables that name the run and the person behind it.
_CI_IDENTITIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "GITHUB_ACTIONS",
        "github",
        ("GITHUB_ACTOR", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"),
    ),
    ("GITLAB_CI", "gitlab", ("GITLAB_USER_LOGIN", "CI_PROJECT_PATH", "CI_JOB_ID")),
    ("JENKINS_URL", "jenkins", ("BUILD_USER_ID", "JOB_NAME", "BUILD_NUMBER")),
    (
        "BUILDKITE",
        "buildkite",
        (
            "BUILDKITE_BUILD_CREATOR",
            "BUILDKITE_PIPELINE_SLUG",
            "BUILDKITE_BUILD_NUMBER",
        ),
    ),
)


def os_user() -> str:
    """Return the name of the operating-system user running this process."""
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"


def ci_identity(environ: dict[str, str] | None = None) -> str | None:
    """Describe the CI run this process belongs to, or ``None`` outside CI."""
    env = os.environ if environ is None else environ
    for marker, system, keys in _CI_IDENTITIES:
        if env.get(marker):
            values = [env.get(key, "?") for key in keys]
            return f"{system}:{values[0]}@{values[1]}#{values[2]}"
    if env.get("CI"):
        return "ci:unknown"
    return None


@dataclass(frozen=True)
class GitState:
    """The commit a folder is at, and whether its tree has local changes."""

    commit: str | None
    dirty: bool


def git_state(folder: Path) -> GitState:
    """Read the HEAD commit and dirty flag of the repository holding ``folder``.

    A folder outside any repository, or a machine without git, gives
    ``GitState(None, True)``: unversioned input counts as dirty.
    """
    try:
        head = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--verify", "-q", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
        if head.returncode != 0:
            return GitState(None, True)
        status = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return GitState(None, True)
    return GitState(head.stdout.strip(), bool(status.stdout.strip()))
