"""Protect: the audit trail is complete, unmodified and its checkpoints trusted."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from zerodrift.comply.evidence import Evidence
from zerodrift.comply.registry import EvidenceRef, Verdict, control
from zerodrift.errors import ConfigError, VerificationError
from zerodrift.govern.audit import (
    CHECKPOINT_PAYLOAD_TYPE,
    AuditRecord,
    AuditTamperedError,
    AuditTrail,
    verify_chain,
)
from zerodrift.protect.dsse import verify_envelope
from zerodrift.protect.keys import PublicKey

__all__ = ["audit_trail_verified"]


@control(
    "audit-trail-verified",
    title="The audit trail verifies: hash chain, signed checkpoints, witness",
    csf=("PR.PS-04",),
)
def audit_trail_verified(evidence: Evidence) -> Verdict:
    """The audit chain and its signed checkpoints verify.

    Every audit record links to its predecessor and hashes correctly, and
    every signed checkpoint (and the witness file) agrees with the chain.
    """
    try:
        witnessed = evidence.witness is not None and evidence.witness.exists()
        signed = evidence.checkpoints or (witnessed and not evidence.historical)
        keys = evidence.keys() if signed else []
        count, head_seq, checkpoint_seqs = _verify(evidence, keys)
    except ConfigError as exc:
        return Verdict.failed(f"trusted keys cannot be loaded: {exc.message}")
    except AuditTamperedError as exc:
        ref = [EvidenceRef("audit-record", str(exc.seq), "first bad record")]
        return Verdict.failed(exc.message, ref if exc.seq else [])
    except VerificationError as exc:
        return Verdict.failed(f"audit checkpoint not trusted: {exc.message}")
    if count == 0:
        return Verdict.not_applicable("no audit records")
    refs = [EvidenceRef("audit-record", str(head_seq), "head of the verified chain")]
    refs += [EvidenceRef("audit-checkpoint", str(s), "signed") for s in checkpoint_seqs]
    caveat = (
        ""
        if checkpoint_seqs
        else "; no signed checkpoint yet, so a cut tail would go unnoticed"
    )
    return Verdict.passed(
        f"{count} records verified, {len(checkpoint_seqs)} signed checkpoints{caveat}",
        refs,
    )


def _verify(evidence: Evidence, keys: list[PublicKey]) -> tuple[int, int, list[int]]:
    if not evidence.historical:
        summary = AuditTrail(evidence.db).verify(keys, evidence.witness)
        seqs = sorted({c.seq for c in evidence.checkpoints if c.seq})
        return summary.records, summary.head_seq, seqs
    # As of a past time: the chain up to then, and the checkpoints made by then.
    records: dict[int, str] = {}

    def tap(chain: Iterable[AuditRecord]) -> Iterator[AuditRecord]:
        for record in chain:
            records[record.seq] = record.hash
            yield record

    count, head_seq, _ = verify_chain(tap(evidence.audit_records()))
    seqs = []
    for checkpoint in evidence.checkpoints:
        payload = verify_envelope(
            checkpoint.envelope, keys, payload_type=CHECKPOINT_PAYLOAD_TYPE
        )
        claim = json.loads(payload)
        seq = int(claim["seq"])
        if seq and records.get(seq) != claim["head_hash"]:
            raise AuditTamperedError(
                f"record {seq} differs from its signed checkpoint", seq=seq
            )
        if seq:
            seqs.append(seq)
    return count, head_seq, sorted(set(seqs))
