"""Rebuild a whole environment from the spec at a commit and trusted images.

A recovery is an apply of the spec as it was at a commit, with every image
verified before use. A *drill* first destroys every node of the environment
to rehearse a disaster. The recovery time (RTO) is measured from the start
of the rebuild (after the drill's destruction) until every service is
healthy, and is recorded in the state database and the audit trail.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zerodrift.errors import ConfigError, OperationalError
from zerodrift.reconcile.journal import Journal
from zerodrift.reconcile.lock import environment_lock
from zerodrift.reconcile.session import Session
from zerodrift.spec import LoadedSpec, parse_spec
from zerodrift.state import utc_now
from zerodrift.state.schema import recoveries

__all__ = ["RecoveryResult", "recover", "resolve_commit", "spec_at_commit"]


@dataclass(frozen=True)
class RecoveryResult:
    """What a recovery did and how long it took."""

    environment: str
    at_commit: str | None
    drill: bool
    destroyed: int
    created: int
    rto_seconds: float
    ok: bool
    run_id: str

    def to_dict(self) -> dict[str, Any]:
        """Render as a JSON-ready dict."""
        return {
            "environment": self.environment,
            "at_commit": self.at_commit,
            "drill": self.drill,
            "destroyed": self.destroyed,
            "created": self.created,
            "rto_seconds": round(self.rto_seconds, 3),
            "status": "succeeded" if self.ok else "failed",
            "run_id": self.run_id,
        }


def resolve_commit(root: Path, ref: str) -> str:
    """Resolve a commit name (sha, tag, ``HEAD~2``) to its full sha.

    Raises:
        ConfigError: The name is not a commit of the repository.
    """
    try:
        done = subprocess.run(
            [
                "git",
                "-C",
                str(root),
                "rev-parse",
                "--verify",
                "-q",
                f"{ref}^{{commit}}",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except OSError as exc:
        raise OperationalError(
            f"cannot run git: {exc.strerror}", reference="git-missing"
        ) from exc
    if done.returncode != 0:
        raise ConfigError(
            f"{ref!r} is not a commit of the repository at {root}",
            hint="name a commit, tag or branch (git log --oneline)",
            reference="commit-unknown",
        )
    return done.stdout.strip()


def spec_at_commit(
    root: Path, commit: str, spec_name: str = "fleet.yaml"
) -> LoadedSpec:
    """Load the spec as it was at ``commit`` (``git show COMMIT:fleet.yaml``).

    Raises:
        ConfigError: The commit or the file at that commit does not exist, or
            the spec there is invalid.
    """
    try:
        shown = subprocess.run(
            ["git", "-C", str(root), "show", f"{commit}:{spec_name}"],
            capture_output=True,
            check=False,
            timeout=30,
        )
    except OSError as exc:
        raise OperationalError(
            f"cannot run git: {exc.strerror}", reference="git-missing"
        ) from exc
    if shown.returncode != 0:
        raise ConfigError(
            f"no {spec_name} at commit {commit!r}: "
            f"{shown.stderr.decode(errors='replace').strip()}",
            hint="name a commit of this repository that has the spec",
            reference="commit-unknown",
        )
    return parse_spec(shown.stdout, f"{commit}:{spec_name}", path=root / spec_name)


def recover(
    session: Session,
    *,
    at_commit: str | None,
    drill: bool,
    progress: Callable[[str], None] = lambda _line: None,
) -> RecoveryResult:
    """Rebuild the session's environment; destroy everything first for a drill.

    With ``at_commit``, the images are the digests the newest successful
    apply at that commit deployed (from the state database), else the
    store's current image of each name. Every image is verified either way.

    Raises:
        OperationalError: The runtime failed or another apply runs.
        VerificationError: An image is not trusted.
    """
    if at_commit:
        session.git_commit = at_commit
        _pin_digests(session, at_commit, progress)
    destroyed = 0
    if drill:
        with environment_lock(session.db, session.state_dir, session.environment):
            destroyed = _destroy_all(session, progress)
    started_at = utc_now()
    began = time.monotonic()
    _plan, result = session.apply(progress=progress, kind="recover")
    rto = time.monotonic() - began
    with session.db.write() as conn:
        conn.execute(
            recoveries.insert().values(
                run_id=result.run_id,
                environment=session.environment,
                at_commit=at_commit,
                drill=drill,
                status="succeeded" if result.ok else "failed",
                started_at=started_at,
                finished_at=utc_now(),
                rto_seconds=rto,
                nodes=len(result.created),
            )
        )
    outcome = RecoveryResult(
        session.environment,
        at_commit,
        drill,
        destroyed,
        len(result.created),
        rto,
        result.ok,
        result.run_id,
    )
    session.record("recover.finished", session.environment, outcome.to_dict())
    return outcome


def _pin_digests(
    session: Session, commit: str, progress: Callable[[str], None]
) -> None:
    """Use the image digests that ran at ``commit``, when they were recorded."""
    deployed = Journal(session.db, session.environment).image_digests_at(commit)
    for service, digest in deployed.items():
        declared = session.fleet.services.get(service)
        if declared is not None:
            session.pinned[declared.image] = digest
    if deployed:
        progress(f"using the image digests deployed at {commit[:12]}")
    else:
        progress(
            f"no deployment recorded at {commit[:12]}; "
            "using the store's current image of each name"
        )


def _destroy_all(session: Session, progress: Callable[[str], None]) -> int:
    # Only this project's nodes: other fleets may name an environment alike.
    nodes = session.own_nodes()
    journal = Journal(session.db, session.environment)
    journal.start("drill", session.spec_digest, session.git_commit)
    count = 0
    for node in nodes:
        step = journal.begin_step(
            "destroy", node.name, service=node.service, identity=None, reason="drill"
        )
        session.backend.destroy(node.name, timeout=2)
        journal.node_destroyed(node.name)
        journal.end_step(step, "done")
        session.record(
            "node.destroyed",
            node.name,
            {"environment": session.environment, "reason": "recovery drill"},
        )
        progress(f"drill: destroyed {node.name}")
        count += 1
    journal.finish("succeeded", {"destroyed": count})
    return count
