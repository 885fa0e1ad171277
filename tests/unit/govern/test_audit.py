"""The audit trail proves itself: every kind of tampering is caught, on both engines.

The tampering is done the way an attacker with database access would do it:
with SQL against the real tables, behind zerodrift's back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner
from sqlalchemy import delete, insert, select, update

from tests.support.keys import make_key
from zerodrift._internal.identity import GitState
from zerodrift.govern.audit import (
    GENESIS_HASH,
    AuditRecord,
    AuditTamperedError,
    AuditTrail,
    CheckpointUntrustedError,
    RecordFilter,
    record_hash,
    verify_chain,
)
from zerodrift.protect.keys import PublicKey
from zerodrift.state import Database
from zerodrift.state.schema import audit_checkpoints, audit_records


class Clock:
    """Database-format times one second apart, from a fixed start."""

    def __init__(self) -> None:
        self.tick = 0

    def __call__(self) -> str:
        self.tick += 1
        return f"2026-01-01T00:00:{self.tick:02d}.000000Z"


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database.open(database_url)
    yield database
    database.close()


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> tuple[CryptoSigner, PublicKey]:
    return make_key(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def trail(db: Database) -> AuditTrail:
    return AuditTrail(
        db, git=GitState("a" * 40, False), actor="alice", ci=None, now=Clock()
    )


def fill(trail: AuditTrail, count: int) -> list[AuditRecord]:
    return [
        trail.append(f"step.{n % 3}", f"thing-{n}", {"n": n})
        for n in range(1, count + 1)
    ]


def row_of(record: AuditRecord) -> dict[str, object]:
    row = record.to_dict()
    row["details"] = json.dumps(record.details)
    return row


def bad_seq(
    trail: AuditTrail, keys: list[PublicKey], witness: Path | None = None
) -> int | None:
    with pytest.raises((AuditTamperedError, CheckpointUntrustedError)) as caught:
        trail.verify(keys, witness)
    error = caught.value
    assert isinstance(error, (AuditTamperedError, CheckpointUntrustedError))
    return error.seq


# --- appending and reading ------------------------------------------------


def test_records_chain_from_genesis(trail: AuditTrail) -> None:
    first, second = fill(trail, 2)
    assert (first.seq, first.prev_hash) == (1, GENESIS_HASH)
    assert second.prev_hash == first.hash
    assert first.hash == record_hash(first.hashed_fields())
    assert (first.actor, first.git_commit, first.git_dirty) == (
        "alice",
        "a" * 40,
        False,
    )


def test_stored_records_read_back_identical(trail: AuditTrail) -> None:
    written = fill(trail, 5)
    assert list(trail.records()) == written


def test_filters(trail: AuditTrail) -> None:
    fill(trail, 9)
    trail.append("step.0.sub", "special", {})

    def seqs(**kwargs: object) -> list[int]:
        return [r.seq for r in trail.records(RecordFilter(**kwargs))]  # type: ignore[arg-type]

    assert seqs(action="step.0") == [3, 6, 9, 10]
    assert seqs(action="step.0.sub") == [10]
    assert seqs(action="step") == list(range(1, 11))
    assert seqs(subject="thing-4") == [4]
    assert seqs(actor="bob") == []
    assert seqs(since="2026-01-01T00:00:08.000000Z") == [8, 9, 10]
    assert seqs(until="2026-01-01T00:00:03.000000Z") == [1, 2]
    assert seqs(after_seq=8) == [9, 10]
    assert seqs(limit=2, newest_first=True) == [10, 9]
    trail.append("step_0", "wildcard", {})  # '_' is no LIKE wildcard here
    assert seqs(action="step.0") == [3, 6, 9, 10]


def test_intact_trail_verifies(
    trail: AuditTrail, key: tuple[CryptoSigner, PublicKey], tmp_path: Path
) -> None:
    signer, public = key
    fill(trail, 4)
    trail.checkpoint(signer, tmp_path / "witness.json")
    fill(trail, 2)
    summary = trail.verify([public], tmp_path / "witness.json")
    assert (summary.records, summary.head_seq, summary.checkpoints) == (6, 6, 1)
    assert summary.last_checkpoint_seq == 4


def test_empty_trail_verifies_and_checkpoints(
    trail: AuditTrail, key: tuple[CryptoSigner, PublicKey]
) -> None:
    signer, public = key
    trail.checkpoint(signer)
    summary = trail.verify([public])
    assert (summary.records, summary.head_hash) == (0, GENESIS_HASH)
    assert summary.last_checkpoint_seq is None


# --- tampering ------------------------------------------------------------


def test_modified_record(trail: AuditTrail, db: Database) -> None:
    fill(trail, 5)
    with db.write() as conn:
        conn.execute(
            update(audit_records)
            .where(audit_records.c.seq == 3)
            .values(subject="someone-else")
        )
    assert bad_seq(trail, []) == 3


def test_modified_record_with_its_hash_recomputed(
    trail: AuditTrail, db: Database
) -> None:
    records = fill(trail, 5)
    forged = records[2].hashed_fields() | {"details": {"n": 999}}
    with db.write() as conn:
        conn.execute(
            update(audit_records)
            .where(audit_records.c.seq == 3)
            .values(details=json.dumps({"n": 999}), hash=record_hash(forged))
        )
    assert bad_seq(trail, []) == 4  # the next record no longer links to it


def test_deleted_record(trail: AuditTrail, db: Database) -> None:
    fill(trail, 5)
    with db.write() as conn:
        conn.execute(delete(audit_records).where(audit_records.c.seq == 2))
    assert bad_seq(trail, []) == 2


def test_inserted_record(trail: AuditTrail, db: Database) -> None:
    records = fill(trail, 4)
    fields = records[1].hashed_fields() | {
        "seq": 3,
        "action": "backdoor.added",
        "prev_hash": "f" * 64,
    }
    forged = AuditRecord(**fields, hash=record_hash(fields))
    with db.write() as conn:
        for record in reversed(records[2:]):
            conn.execute(
                update(audit_records)
                .where(audit_records.c.seq == record.seq)
                .values(seq=record.seq + 1)
            )
        conn.execute(insert(audit_records).values(**row_of(forged)))
    assert bad_seq(trail, []) == 3


def test_inserted_record_with_the_tail_rehashed_is_caught_by_the_checkpoint(
    trail: AuditTrail, db: Database, key: tuple[CryptoSigner, PublicKey]
) -> None:
    """An attacker can rebuild a consistent chain; only a signature stops them."""
    signer, public = key
    records = fill(trail, 5)
    trail.checkpoint(signer)
    rebuilt, prev = [], records[1].hash
    for seq, old in enumerate(
        [records[1], *records[2:]], start=3
    ):  # a copy of record 2 goes in at 3, the rest shift up
        fields = old.hashed_fields() | {"seq": seq, "prev_hash": prev}
        record = AuditRecord(**fields, hash=record_hash(fields))
        rebuilt.append(record)
        prev = record.hash
    with db.write() as conn:
        conn.execute(delete(audit_records).where(audit_records.c.seq >= 3))
        for record in rebuilt:
            conn.execute(insert(audit_records).values(**row_of(record)))
    assert verify_chain(trail.records())[0] == 6  # the chain alone looks fine
    with pytest.raises(AuditTamperedError) as caught:
        trail.verify([public])
    assert caught.value.seq == 5
    assert "differs from its signed checkpoint" in caught.value.message


def test_reordered_records(trail: AuditTrail, db: Database) -> None:
    records = fill(trail, 5)
    third, fourth = records[2], records[3]
    with db.write() as conn:
        conn.execute(delete(audit_records).where(audit_records.c.seq.in_([3, 4])))
        conn.execute(insert(audit_records).values(**(row_of(fourth) | {"seq": 3})))
        conn.execute(insert(audit_records).values(**(row_of(third) | {"seq": 4})))
    assert bad_seq(trail, []) == 3


def test_truncation_past_a_checkpoint(
    trail: AuditTrail, db: Database, key: tuple[CryptoSigner, PublicKey]
) -> None:
    signer, public = key
    fill(trail, 5)
    trail.checkpoint(signer)
    fill(trail, 2)
    with db.write() as conn:
        conn.execute(delete(audit_records).where(audit_records.c.seq >= 4))
    with pytest.raises(AuditTamperedError) as caught:
        trail.verify([public])
    assert caught.value.seq == 4
    assert "deleted from the end" in caught.value.message


def test_truncation_with_checkpoints_deleted_is_caught_by_the_witness(
    trail: AuditTrail,
    db: Database,
    key: tuple[CryptoSigner, PublicKey],
    tmp_path: Path,
) -> None:
    signer, public = key
    witness = tmp_path / "witness.json"
    fill(trail, 5)
    trail.checkpoint(signer, witness)
    with db.write() as conn:
        conn.execute(delete(audit_records).where(audit_records.c.seq >= 3))
        conn.execute(delete(audit_checkpoints))
    assert bad_seq(trail, [public], witness) == 3
    # Without the witness nothing is left to prove the cut: a documented limit.
    assert trail.verify([public]).records == 2


def test_truncation_after_the_last_checkpoint_is_a_known_limit(
    trail: AuditTrail, db: Database, key: tuple[CryptoSigner, PublicKey]
) -> None:
    signer, public = key
    fill(trail, 3)
    trail.checkpoint(signer)
    fill(trail, 3)
    with db.write() as conn:
        conn.execute(delete(audit_records).where(audit_records.c.seq > 3))
    assert trail.verify([public]).records == 3


def test_forged_checkpoint(
    trail: AuditTrail, db: Database, key: tuple[CryptoSigner, PublicKey], tmp_path: Path
) -> None:
    _, public = key
    intruder, _ = make_key(tmp_path, "intruder")
    fill(trail, 4)
    trail.checkpoint(intruder)
    with pytest.raises(CheckpointUntrustedError) as caught:
        trail.verify([public])
    assert caught.value.seq == 4
    assert "not made by a trusted key" in caught.value.message


def test_forged_witness(
    trail: AuditTrail, key: tuple[CryptoSigner, PublicKey], tmp_path: Path
) -> None:
    signer, public = key
    fill(trail, 2)
    trail.checkpoint(signer)
    intruder, _ = make_key(tmp_path, "intruder")
    other = AuditTrail(trail.db, now=Clock())
    witness = tmp_path / "witness.json"
    other.checkpoint(intruder, witness)
    assert bad_seq(trail, [public], witness) == 2


def test_corrupt_witness(
    trail: AuditTrail, key: tuple[CryptoSigner, PublicKey], tmp_path: Path
) -> None:
    _, public = key
    fill(trail, 2)
    witness = tmp_path / "witness.json"
    witness.write_text("{not json")
    with pytest.raises(AuditTamperedError, match="witness file"):
        trail.verify([public], witness)


def test_checkpoint_with_an_ed25519_key(trail: AuditTrail, tmp_path: Path) -> None:
    signer, public = make_key(tmp_path, "ed", "ed25519")
    fill(trail, 3)
    checkpoint = trail.checkpoint(signer)
    assert checkpoint.keyid == public.keyid
    assert trail.verify([public]).last_checkpoint_seq == 3


def test_prev_hash_is_unique_so_the_chain_cannot_fork(
    trail: AuditTrail, db: Database
) -> None:
    from zerodrift.errors import OperationalError

    first = fill(trail, 1)[0]
    fork = first.hashed_fields() | {"seq": 2, "prev_hash": first.prev_hash}
    with pytest.raises(OperationalError), db.write() as conn:
        conn.execute(
            insert(audit_records).values(
                **row_of(AuditRecord(**fork, hash=record_hash(fork)))
            )
        )
    with db.read() as conn:
        assert conn.execute(select(audit_records.c.seq)).scalars().all() == [1]
