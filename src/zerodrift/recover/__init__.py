"""Recover: rebuild an environment from the spec at a commit (Recover, RC)."""

from zerodrift.recover.rebuild import (
    RecoveryResult,
    recover,
    resolve_commit,
    spec_at_commit,
)

__all__ = ["RecoveryResult", "recover", "resolve_commit", "spec_at_commit"]
