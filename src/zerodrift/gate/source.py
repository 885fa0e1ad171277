"""Facts about the source repository, read with git (the IO edge of the gate).

Three questions: which of the files the spec depends on are not committed,
who signed the HEAD commit, and whether a commit is an ancestor of HEAD.
Each runs one short ``git`` command; a missing git is an operational error,
a folder outside any repository is a fact the rules report.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from zerodrift.errors import OperationalError

__all__ = [
    "CommitSignature",
    "SourceFacts",
    "commit_signature",
    "is_ancestor",
    "source_facts",
]

_TIMEOUT = 60


@dataclass(frozen=True)
class CommitSignature:
    """git's verdict on the signature of a commit.

    Attributes:
        status: git's ``%G?`` letter: G good, U good but untrusted key,
            B bad, X/Y expired, R revoked, E cannot be checked, N unsigned.
        fingerprint: Fingerprint of the signing key (``%GF``), when known.
        signer: Who signed (``%GS``), when known.
    """

    status: str
    fingerprint: str | None = None
    signer: str | None = None


@dataclass(frozen=True)
class SourceFacts:
    """The repository state the gate judges.

    Attributes:
        in_repository: Whether the project is inside a git work tree.
        head: HEAD's commit, when there is one.
        dirty: Paths (relative to the project) with uncommitted changes.
        signature: HEAD's signature, when the commit rule asked for it.
    """

    in_repository: bool
    head: str | None
    dirty: tuple[str, ...] = ()
    signature: CommitSignature | None = None


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=_TIMEOUT,
        )
    except FileNotFoundError as exc:
        raise OperationalError(
            "git is not installed",
            hint="install git; the gate compares the spec with what is committed",
            reference="git-missing",
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise OperationalError(
            f"git {args[0]} took longer than {_TIMEOUT} s",
            reference="git-timeout",
        ) from exc


def source_facts(root: Path, paths: Iterable[str]) -> SourceFacts:
    """Read HEAD and which of ``paths`` (relative to ``root``) are uncommitted.

    Untracked and git-ignored files count as uncommitted: a file the image
    copies but the commit does not hold would be built yet never reviewed.

    Raises:
        OperationalError: git is missing or hangs.
    """
    head = _git(root, "rev-parse", "--verify", "-q", "HEAD")
    if head.returncode != 0:
        inside = _git(root, "rev-parse", "--is-inside-work-tree")
        return SourceFacts(inside.returncode == 0, None, ())
    wanted = sorted(set(paths))
    status = _git(
        root,
        "status",
        "--porcelain=v1",
        "-z",
        "--untracked-files=all",
        "--ignored=traditional",
        "--",
        *wanted,
    )
    dirty = _porcelain_paths(status.stdout, root)
    return SourceFacts(True, head.stdout.strip(), tuple(dirty))


def _porcelain_paths(output: str, root: Path) -> list[str]:
    """Paths from ``git status --porcelain -z``, relative to ``root``."""
    if not output:
        return []
    top = _git(root, "rev-parse", "--show-toplevel").stdout.strip()
    entries = output.split("\0")
    paths: list[str] = []
    skip_next = False
    for entry in entries:
        if skip_next or not entry:
            skip_next = False
            continue
        code, path = entry[:2], entry[3:]
        # A rename lists its old path as the next entry; the new one counts.
        skip_next = "R" in code or "C" in code
        absolute = Path(top, path) if top else root / path
        try:
            paths.append(str(absolute.resolve().relative_to(root.resolve())))
        except ValueError:
            paths.append(path)
    return sorted(set(paths))


def commit_signature(root: Path, allowed_signers: Path | None) -> CommitSignature:
    """Ask git to verify HEAD's signature.

    SSH signatures are checked against ``allowed_signers`` (git's
    ``gpg.ssh.allowedSignersFile`` format); OpenPGP signatures against the
    keyring of the user running the gate.

    Raises:
        OperationalError: git is missing or hangs.
    """
    args = []
    if allowed_signers is not None:
        args = ["-c", f"gpg.ssh.allowedSignersFile={allowed_signers}"]
    shown = _git(root, *args, "log", "-1", "--format=%G?%x00%GF%x00%GS", "HEAD")
    status, _, rest = shown.stdout.strip().partition("\0")
    fingerprint, _, signer = rest.partition("\0")
    return CommitSignature(status or "N", fingerprint or None, signer or None)


def is_ancestor(root: Path, commit: str, head: str = "HEAD") -> bool:
    """Whether ``commit`` is ``head`` or one of its ancestors.

    An unknown commit (not in this clone) is not an ancestor.

    Raises:
        OperationalError: git is missing or hangs.
    """
    if not commit or commit.startswith("-"):
        return False
    return _git(root, "merge-base", "--is-ancestor", commit, head).returncode == 0
