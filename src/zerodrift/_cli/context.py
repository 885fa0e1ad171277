"""What a command needs, opened lazily: project, spec, database, audit, keys."""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerodrift._internal.identity import GitState, git_state
from zerodrift.errors import ConfigError, ZerodriftError
from zerodrift.project import Project

# Every command imports this module, so what only some commands need (the
# database, keys, the spec models) is imported where it is used: start-up
# time is paid per invocation (ADR 0044).
if TYPE_CHECKING:
    from securesystemslib.signer import CryptoSigner

    from zerodrift.govern.audit import AuditRecord, AuditTrail
    from zerodrift.protect.keys import PublicKey
    from zerodrift.spec import LoadedSpec
    from zerodrift.state import Database

__all__ = ["CHECKPOINT_INTERVAL", "Context"]

_logger = logging.getLogger(__name__)

# A signed checkpoint every this many records, when the key is usable
# without a prompt; `zerodrift audit checkpoint` signs on demand.
CHECKPOINT_INTERVAL = 100


@dataclass
class Context:
    """Per-invocation state shared by command implementations."""

    args: argparse.Namespace
    _closables: list[Database] = field(default_factory=list)

    @cached_property
    def project(self) -> Project:
        """The project named by ``--project`` or found from the current folder."""
        start: Path | None = getattr(self.args, "project", None)
        if start is not None and not (start / "fleet.yaml").is_file():
            raise ConfigError(
                f"no fleet.yaml in {start}",
                hint="run 'zerodrift init' there first",
                reference="project-missing",
            )
        return Project.discover(start)

    @cached_property
    def spec(self) -> LoadedSpec:
        """The validated fleet spec."""
        return self.project.load_spec()

    @cached_property
    def git(self) -> GitState:
        """Commit and dirty flag of the project's repository."""
        return git_state(self.project.root)

    @cached_property
    def db(self) -> Database:
        """The migrated state database."""
        from zerodrift.state import Database

        database = Database.open(self.project.database_url)
        self._closables.append(database)
        return database

    @cached_property
    def audit(self) -> AuditTrail:
        """The audit trail, recording this invocation's git state."""
        from zerodrift.govern.audit import AuditTrail

        return AuditTrail(self.db, git=self.git)

    @property
    def witness_path(self) -> Path:
        """The file mirroring the newest signed audit checkpoint."""
        return self.project.witness_path

    def trusted_keys(
        self, environment: str | None = None, *, whole_spec: bool = True
    ) -> list[PublicKey]:
        """Public keys the spec trusts (for one environment, or any).

        With ``whole_spec=False`` (and no environment), only the spec's
        ``trust.keys`` is read and checked, unless the spec is loaded
        already: for host commands that need nothing else from it.

        Raises:
            ConfigError: A listed key file is missing or invalid.
        """
        from zerodrift.protect.keys import load_public_key

        if not whole_spec and environment is None and "spec" not in self.__dict__:
            from zerodrift.spec import load_trust_keys

            files = load_trust_keys(self.project.spec_path)
            resolve = self.project.resolve
            return [load_public_key(n, resolve(files[n])) for n in sorted(files)]
        trust = self.spec.fleet.trust
        names = (
            trust.environments.get(environment, [])
            if environment
            else sorted(trust.keys)
        )
        return [load_public_key(n, self.project.resolve(trust.keys[n])) for n in names]

    def signer(self) -> CryptoSigner:
        """Decrypt the project's signing key (prompting if needed).

        Raises:
            ConfigError: The key is missing or the passphrase is wrong.
        """
        from zerodrift.protect.keys import load_signer, read_passphrase

        passphrase = read_passphrase(purpose=f"key {self.project.key_name!r}")
        return load_signer(self.project.private_key_path, passphrase)

    def record(
        self, action: str, subject: str, details: dict[str, Any] | None = None
    ) -> AuditRecord:
        """Append to the audit trail, then checkpoint if one is due."""
        record = self.audit.append(action, subject, details)
        self._maybe_checkpoint()
        return record

    def note_spec_revision(self) -> None:
        """Record a ``spec.changed`` audit entry the first time a spec is seen."""
        from zerodrift.state.db import utc_now
        from zerodrift.state.schema import spec_revisions

        spec = self.spec
        with self.db.write() as conn:
            inserted = self.db.insert_new(
                conn,
                spec_revisions,
                {
                    "spec_digest": spec.digest,
                    "first_seen_at": utc_now(),
                    "git_commit": self.git.commit,
                    "git_dirty": self.git.dirty,
                },
            )
        if inserted:
            self.record("spec.changed", spec.fleet.name, {"spec_digest": spec.digest})

    def _maybe_checkpoint(self) -> None:
        from zerodrift.protect.keys import PASSPHRASE_ENV

        if self.audit.records_since_checkpoint() < CHECKPOINT_INTERVAL:
            return
        if (
            not os.environ.get(PASSPHRASE_ENV)
            or not self.project.private_key_path.exists()
        ):
            _logger.debug("audit checkpoint due but the key needs a prompt; skipped")
            return
        # The action itself succeeded and is recorded; a periodic checkpoint
        # that cannot be signed must not turn that into a failure.
        try:
            self.audit.checkpoint(self.signer(), self.witness_path)
        except ZerodriftError as exc:
            _logger.warning(
                "audit checkpoint due but not signed (%s): %s; run "
                "'zerodrift audit checkpoint'",
                exc.reference,
                exc.message,
            )

    def close(self) -> None:
        """Release database connections."""
        for database in self._closables:
            database.close()
