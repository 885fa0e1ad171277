"""Protect: every recorded spec revision came from a committed, clean tree."""

from __future__ import annotations

from zerodrift.comply.evidence import Evidence
from zerodrift.comply.registry import EvidenceRef, Verdict, control

__all__ = ["spec_committed"]


@control(
    "spec-committed",
    title="Every recorded spec revision was committed to git, with a clean tree",
    csf=("PR.PS-01",),
)
def spec_committed(evidence: Evidence) -> Verdict:
    """Configuration management: the spec zerodrift acted on was committed.

    Configuration management: each spec digest zerodrift acted on was at a
    git commit, and the working tree had no uncommitted changes.
    """
    revisions = evidence.spec_revisions
    if not revisions:
        return Verdict.not_applicable("no spec revision recorded")
    bad = [r for r in revisions if r.git_dirty or r.git_commit is None]
    if bad:
        refs = [
            EvidenceRef(
                "spec-revision",
                r.spec_digest,
                "not in git"
                if r.git_commit is None
                else f"dirty at {r.git_commit[:12]}",
                r.first_seen_at,
            )
            for r in reversed(bad)
        ]
        return Verdict.failed(
            f"{len(bad)} of {len(revisions)} spec revisions were not committed cleanly",
            refs,
        )
    refs = [
        EvidenceRef(
            "spec-revision", r.spec_digest, f"commit {r.git_commit}", r.first_seen_at
        )
        for r in reversed(revisions)
    ]
    return Verdict.passed(
        f"all {len(revisions)} spec revisions were committed cleanly", refs
    )
