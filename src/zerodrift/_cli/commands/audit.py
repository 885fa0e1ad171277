"""``zerodrift audit log|verify|checkpoint``: read and prove the audit trail."""

from __future__ import annotations

import argparse
from typing import Any

from zerodrift._cli.context import Context
from zerodrift._cli.options import add_command, add_format
from zerodrift._cli.output import console, emit_json, emit_jsonl, table
from zerodrift._cli.status import ExitCode

__all__ = ["register"]


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``audit`` and its sub-commands."""
    parser = add_command(
        subparsers,
        common,
        "audit",
        None,
        help="read, verify and checkpoint the tamper-evident audit trail",
    )
    sub = parser.add_subparsers(title="audit commands", metavar="ACTION", required=True)

    log = add_command(
        sub,
        common,
        "log",
        run_log,
        help="list audit records",
        epilog="examples:\n  zerodrift audit log --action build --since 2026-01-01\n"
        "  zerodrift audit log --format jsonl | your-siem-shipper",
    )
    log.add_argument("--action", help="only this action (or its sub-actions)")
    log.add_argument("--subject", help="only this subject")
    log.add_argument("--actor", help="only this actor")
    log.add_argument("--since", metavar="TIME", help="ISO 8601 time, inclusive")
    log.add_argument("--until", metavar="TIME", help="ISO 8601 time, exclusive")
    log.add_argument(
        "--limit", type=_positive, metavar="N", help="only the newest N records"
    )
    add_format(log, "jsonl")

    verify = add_command(
        sub,
        common,
        "verify",
        run_verify,
        help="verify the hash chain, signed checkpoints and witness",
        epilog="exit code 0 when intact, 1 when tampering is detected (the first bad "
        "record is named).",
    )
    add_format(verify)

    checkpoint = add_command(
        sub,
        common,
        "checkpoint",
        run_checkpoint,
        help="sign the current head of the trail now",
    )
    add_format(checkpoint)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive number")
    return value


def run_log(ctx: Context) -> int:
    """Print records matching the filters."""
    from zerodrift.govern.audit import RecordFilter
    from zerodrift.state import parse_time

    args = ctx.args
    flt = RecordFilter(
        action=args.action,
        subject=args.subject,
        actor=args.actor,
        since=parse_time(args.since, field="--since") if args.since else None,
        until=parse_time(args.until, field="--until") if args.until else None,
        limit=args.limit,
        newest_first=args.limit is not None,
    )
    records = list(ctx.audit.records(flt))
    if args.limit is not None:
        records.reverse()
    if args.format == "jsonl":
        emit_jsonl(r.to_dict() for r in records)
    elif args.format == "json":
        emit_json("audit-log", {"records": [r.to_dict() for r in records]})
    else:
        table(
            None,
            ["seq", "time", "actor", "action", "subject", "commit"],
            [
                (
                    r.seq,
                    r.recorded_at,
                    r.actor,
                    r.action,
                    r.subject,
                    (r.git_commit or "-")[:12] + ("*" if r.git_dirty else ""),
                )
                for r in records
            ],
        )
    return ExitCode.OK


def run_verify(ctx: Context) -> int:
    """Verify the trail; report the first bad record."""
    from zerodrift.govern.audit import AuditTamperedError, CheckpointUntrustedError

    keys = ctx.trusted_keys()
    try:
        summary = ctx.audit.verify(keys, ctx.witness_path)
    except (AuditTamperedError, CheckpointUntrustedError) as exc:
        if ctx.args.format == "json":
            emit_json(
                "audit-verification",
                {"intact": False, "first_bad_seq": exc.seq, "error": exc.to_dict()},
            )
            return ExitCode.FINDINGS
        raise
    result = {
        "intact": True,
        "records": summary.records,
        "head_seq": summary.head_seq,
        "head_hash": summary.head_hash,
        "checkpoints": summary.checkpoints,
        "last_checkpoint_seq": summary.last_checkpoint_seq,
    }
    if ctx.args.format == "json":
        emit_json("audit-verification", result)
    else:
        signed = (
            f"signed through record {summary.last_checkpoint_seq}"
            if summary.last_checkpoint_seq
            else "no signed checkpoint yet"
        )
        console().print(
            f"audit trail intact: {summary.records} records, head "
            f"{summary.head_hash[:16]}…, {summary.checkpoints} "
            f"checkpoints, {signed}"
        )
    return ExitCode.OK


def run_checkpoint(ctx: Context) -> int:
    """Sign the head of the trail."""
    checkpoint = ctx.audit.checkpoint(ctx.signer(), ctx.witness_path)
    result = {
        "seq": checkpoint.seq,
        "head_hash": checkpoint.head_hash,
        "keyid": checkpoint.keyid,
        "created_at": checkpoint.created_at,
    }
    if ctx.args.format == "json":
        emit_json("audit-checkpoint", result)
    else:
        console().print(
            f"checkpoint signed: record {checkpoint.seq} "
            f"{checkpoint.head_hash[:16]}… by key {checkpoint.keyid[:12]}"
        )
    return ExitCode.OK
