"""The tamper-evident audit trail.

Every state-changing action appends one record. Each record's hash is the
SHA-256 of the RFC 8785 canonical JSON of its fields, including the previous
record's hash, so the records form a chain::

    genesis (64 zeros) <- r1.prev_hash ; r1.hash <- r2.prev_hash ; ...

Changing, deleting, inserting or reordering any record breaks the chain at
that record. Truncating the tail keeps a valid chain, so the head is signed
periodically: a signed *checkpoint* states "record N has hash H". A chain
shorter than its newest checkpoint, or disagreeing with it, has been cut.
The newest checkpoint is also mirrored to a *witness* file outside the
database, so deleting checkpoint rows along with the tail is detected too.

Appends are serialised by the database (``BEGIN IMMEDIATE`` on SQLite, an
advisory lock on PostgreSQL) and the unique ``prev_hash`` column makes a fork
impossible even if a lock were bypassed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from securesystemslib.signer import Signer
from sqlalchemy import Select, func, select

from zerodrift._internal.atomic import write_atomic
from zerodrift._internal.canonical import canonical_json, sha256_hex
from zerodrift._internal.identity import GitState, ci_identity, os_user
from zerodrift.errors import IntegrityError, VerificationError
from zerodrift.protect.dsse import (
    decode_payload,
    envelope_to_json,
    sign_payload,
    verify_envelope,
)
from zerodrift.protect.keys import PublicKey
from zerodrift.state import Database, utc_now
from zerodrift.state.schema import audit_checkpoints, audit_records

__all__ = [
    "CHECKPOINT_PAYLOAD_TYPE",
    "GENESIS_HASH",
    "AuditRecord",
    "AuditTamperedError",
    "AuditTrail",
    "CheckpointUntrustedError",
    "Checkpoint",
    "ChainSummary",
    "RecordFilter",
    "verify_chain",
]

_logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
CHECKPOINT_PAYLOAD_TYPE = "application/vnd.zerodrift.audit-checkpoint.v1+json"
_LOCK = "audit"


class AuditTamperedError(IntegrityError):
    """The audit trail does not verify; ``seq`` is the first bad record."""

    reference = "audit-tampered"

    def __init__(self, message: str, *, seq: int | None, hint: str | None = None):
        super().__init__(
            message,
            hint=hint
            or "treat the audit trail as compromised: "
            "preserve the database and investigate",
        )
        self.seq = seq


class CheckpointUntrustedError(VerificationError):
    """A checkpoint or the witness is not signed by a trusted key.

    ``seq`` is the record the checkpoint claims to cover, read from its
    unverified payload for the report only.
    """

    reference = "audit-checkpoint-untrusted"

    def __init__(self, message: str, *, seq: int | None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.seq = seq


@dataclass(frozen=True)
class AuditRecord:
    """One entry of the audit trail."""

    seq: int
    recorded_at: str
    actor: str
    ci_identity: str | None
    action: str
    subject: str
    details: dict[str, Any]
    git_commit: str | None
    git_dirty: bool
    prev_hash: str
    hash: str

    def expected_hash(self) -> str:
        """Recompute this record's hash from its fields."""
        return record_hash(self.hashed_fields())

    def hashed_fields(self) -> dict[str, Any]:
        """The fields the hash covers (everything but the hash itself)."""
        # Built field by field: asdict() deep-copies ``details``, which doubled
        # the cost of verifying a long trail.
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "hash"}

    def to_dict(self) -> dict[str, Any]:
        """Render as a JSON-ready dict."""
        return asdict(self)


def record_hash(fields: dict[str, Any]) -> str:
    """Hash the canonical JSON of a record's fields."""
    return sha256_hex(canonical_json(fields))


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement that record ``seq`` has hash ``head_hash``."""

    seq: int
    head_hash: str
    keyid: str
    created_at: str
    envelope: dict[str, Any]


@dataclass(frozen=True)
class ChainSummary:
    """What a successful verification covered."""

    records: int
    head_seq: int
    head_hash: str
    checkpoints: int
    last_checkpoint_seq: int | None


@dataclass(frozen=True)
class RecordFilter:
    """Which records :meth:`AuditTrail.records` returns."""

    action: str | None = None
    subject: str | None = None
    actor: str | None = None
    since: str | None = None
    until: str | None = None
    after_seq: int | None = None
    limit: int | None = None
    newest_first: bool = False


def verify_chain(records: Iterable[AuditRecord]) -> tuple[int, int, str]:
    """Check a chain read in ``seq`` order; return (count, head seq, head hash).

    Raises:
        AuditTamperedError: A record was changed, removed, inserted or moved.
    """
    expected_seq, prev, count = 1, GENESIS_HASH, 0
    for record in records:
        if record.seq != expected_seq:
            raise AuditTamperedError(
                f"record {expected_seq} is missing (next present is {record.seq})",
                seq=expected_seq,
            )
        if record.prev_hash != prev:
            raise AuditTamperedError(
                f"record {record.seq} does not follow record {record.seq - 1}: "
                "a record was removed, inserted or reordered here",
                seq=record.seq,
            )
        if record.expected_hash() != record.hash:
            raise AuditTamperedError(
                f"record {record.seq} ({record.action} {record.subject}) was modified "
                "after it was written",
                seq=record.seq,
            )
        prev, expected_seq, count = record.hash, expected_seq + 1, count + 1
    return count, expected_seq - 1, prev


@dataclass
class AuditTrail:
    """Append to, read, checkpoint and verify the audit trail of a database.

    Args:
        db: The state database.
        git: Commit and dirty flag of the spec repository, recorded with each
            entry.
        actor: The acting user (default: the OS user).
        ci: The CI identity (default: read from the environment).
        now: Clock returning database-format times; injectable for tests.
    """

    db: Database
    git: GitState = field(default_factory=lambda: GitState(None, True))
    actor: str = field(default_factory=os_user)
    ci: str | None = field(default_factory=ci_identity)
    now: Callable[[], str] = utc_now

    def append(
        self, action: str, subject: str, details: dict[str, Any] | None = None
    ) -> AuditRecord:
        """Append a record and return it. Never forks the chain.

        ``details`` must not contain secrets: the trail is read by auditors.

        Raises:
            OperationalError: The database failed; nothing was appended.
        """
        with self.db.write(lock=_LOCK) as conn:
            head = conn.execute(
                select(audit_records.c.seq, audit_records.c.hash)
                .order_by(audit_records.c.seq.desc())
                .limit(1)
            ).first()
            seq, prev = (head.seq + 1, head.hash) if head else (1, GENESIS_HASH)
            fields: dict[str, Any] = {
                "seq": seq,
                "recorded_at": self.now(),
                "actor": self.actor,
                "ci_identity": self.ci,
                "action": action,
                "subject": subject,
                "details": details or {},
                "git_commit": self.git.commit,
                "git_dirty": self.git.dirty,
                "prev_hash": prev,
            }
            record = AuditRecord(**fields, hash=record_hash(fields))
            row = record.to_dict()
            row["details"] = canonical_json(record.details).decode()
            conn.execute(audit_records.insert().values(**row))
        _logger.debug("audit %d: %s %s", seq, action, subject)
        return record

    def records(self, flt: RecordFilter | None = None) -> Iterator[AuditRecord]:
        """Yield records matching ``flt`` (all, oldest first, by default).

        Raises:
            OperationalError: The database failed.
        """
        query = _filtered(select(audit_records), flt or RecordFilter())
        with self.db.read() as conn:
            for row in conn.execute(query):
                yield _record_from_row(row._mapping)

    def head(self) -> tuple[int, str]:
        """Return the newest (seq, hash), or (0, genesis) for an empty trail."""
        with self.db.read() as conn:
            row = conn.execute(
                select(audit_records.c.seq, audit_records.c.hash)
                .order_by(audit_records.c.seq.desc())
                .limit(1)
            ).first()
        return (row.seq, row.hash) if row else (0, GENESIS_HASH)

    def checkpoints(self) -> list[Checkpoint]:
        """Return every checkpoint, oldest first."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(audit_checkpoints).order_by(audit_checkpoints.c.id)
            ).all()
        return [
            Checkpoint(
                r.seq, r.head_hash, r.keyid, r.created_at, json.loads(r.envelope)
            )
            for r in rows
        ]

    def records_since_checkpoint(self) -> int:
        """Count records appended after the newest checkpoint."""
        with self.db.read() as conn:
            last = conn.execute(select(func.max(audit_checkpoints.c.seq))).scalar()
            head = conn.execute(select(func.max(audit_records.c.seq))).scalar()
        return int(head or 0) - int(last or 0)

    def checkpoint(self, signer: Signer, witness: Path | None = None) -> Checkpoint:
        """Sign the current head, store the checkpoint, update the witness file.

        An empty trail is checkpointed as record 0 with the genesis hash; such
        a checkpoint claims nothing when verified.

        Raises:
            OperationalError: The database or the witness file failed.
        """
        seq, head_hash = self.head()
        created_at = self.now()
        payload = canonical_json(
            {"seq": seq, "head_hash": head_hash, "created_at": created_at}
        )
        envelope = sign_payload(payload, CHECKPOINT_PAYLOAD_TYPE, signer)
        keyid = str(signer.public_key.keyid)
        with self.db.write(lock=_LOCK) as conn:
            conn.execute(
                audit_checkpoints.insert().values(
                    seq=seq,
                    head_hash=head_hash,
                    keyid=keyid,
                    envelope=envelope_to_json(envelope),
                    created_at=created_at,
                )
            )
        checkpoint = Checkpoint(seq, head_hash, keyid, created_at, envelope)
        if witness is not None:
            witness.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(witness, (envelope_to_json(envelope) + "\n").encode())
        return checkpoint

    def verify(
        self, keys: list[PublicKey], witness: Path | None = None
    ) -> ChainSummary:
        """Verify the whole chain, every checkpoint and the witness.

        Steps, in order:

        1. every record links to its predecessor and hashes to its ``hash``;
        2. every checkpoint is signed by a trusted key and agrees with the
           record it names, which must still exist (else: truncation);
        3. the witness file, if given and present, does the same.

        Raises:
            AuditTamperedError: Any step failed; names the first bad record.
            CheckpointUntrustedError: A checkpoint or the witness is not signed
                by a trusted key (forged, or signed by a key no longer trusted).
            OperationalError: The database failed.
        """
        checkpoints = self.checkpoints()
        expected = self._checkpoint_claims(checkpoints, keys, witness)
        found: dict[int, str] = {}

        # Step 1, streaming: collect only the hashes that checkpoints name.
        def tap(records: Iterable[AuditRecord]) -> Iterator[AuditRecord]:
            for record in records:
                if record.seq in expected:
                    found[record.seq] = record.hash
                yield record

        count, head_seq, head_hash = verify_chain(tap(self.records()))

        # Steps 2 and 3: each signed claim must match the chain as it is now.
        for seq, claimed in sorted(expected.items()):
            if seq > head_seq:
                raise AuditTamperedError(
                    f"the trail ends at record {head_seq} but a signed checkpoint "
                    f"covers record {seq}: records were deleted from the end",
                    seq=head_seq + 1,
                )
            if found.get(seq) != claimed:
                raise AuditTamperedError(
                    f"record {seq} differs from its signed checkpoint", seq=seq
                )
        last = max(expected) if expected else None
        return ChainSummary(count, head_seq, head_hash, len(checkpoints), last)

    def _checkpoint_claims(
        self, checkpoints: list[Checkpoint], keys: list[PublicKey], witness: Path | None
    ) -> dict[int, str]:
        envelopes = [(f"checkpoint {c.seq}", c.envelope) for c in checkpoints]
        if witness is not None and witness.exists():
            try:
                envelopes.append(("witness file", json.loads(witness.read_bytes())))
            except ValueError as exc:
                raise AuditTamperedError(
                    f"witness file {witness} is corrupt", seq=None
                ) from exc
        claims: dict[int, str] = {}
        for label, envelope in envelopes:
            try:
                payload = verify_envelope(
                    envelope, keys, payload_type=CHECKPOINT_PAYLOAD_TYPE
                )
            except VerificationError as exc:
                raise CheckpointUntrustedError(
                    f"{label}: {exc.message}",
                    seq=_claimed_seq(envelope),
                    hint=(exc.hint or "")
                    + "; a forged checkpoint means the trail was tampered with, "
                    "a retired key must stay listed under 'trust.keys'",
                ) from exc
            claim = json.loads(payload)
            seq, head_hash = int(claim["seq"]), str(claim["head_hash"])
            if claims.get(seq, head_hash) != head_hash:
                raise AuditTamperedError(
                    f"two signed checkpoints disagree about record {seq}", seq=seq
                )
            claims[seq] = head_hash
        claims.pop(0, None)  # a checkpoint of the empty trail claims nothing
        return claims


def _claimed_seq(envelope: Any) -> int | None:
    """Read the record number an envelope claims, WITHOUT verifying it."""
    try:
        return int(json.loads(decode_payload(envelope))["seq"])
    except (KeyError, TypeError, ValueError):
        return None


def _filtered(query: Select[Any], flt: RecordFilter) -> Select[Any]:
    c = audit_records.c
    if flt.action:
        # "build" matches "build" and "build.*"; an exact dotted name matches itself.
        pattern = flt.action.replace("\\", "\\\\").replace("%", "\\%")
        pattern = pattern.replace("_", "\\_") + ".%"
        query = query.where(
            (c.action == flt.action) | c.action.like(pattern, escape="\\")
        )
    if flt.subject:
        query = query.where(c.subject == flt.subject)
    if flt.actor:
        query = query.where(c.actor == flt.actor)
    if flt.since:
        query = query.where(c.recorded_at >= flt.since)
    if flt.until:
        query = query.where(c.recorded_at < flt.until)
    if flt.after_seq is not None:
        query = query.where(c.seq > flt.after_seq)
    query = query.order_by(c.seq.desc() if flt.newest_first else c.seq)
    if flt.limit is not None:
        query = query.limit(flt.limit)
    return query


def _record_from_row(row: Any) -> AuditRecord:
    return AuditRecord(
        seq=row["seq"],
        recorded_at=row["recorded_at"],
        actor=row["actor"],
        ci_identity=row["ci_identity"],
        action=row["action"],
        subject=row["subject"],
        details=json.loads(row["details"]),
        git_commit=row["git_commit"],
        git_dirty=bool(row["git_dirty"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )
