"""``zerodrift findings``: list, show and resolve what the detectors found."""

from __future__ import annotations

import argparse
from typing import Any

from zerodrift._cli.context import Context
from zerodrift._cli.options import add_command, add_env, add_format
from zerodrift._cli.output import emit_json, table
from zerodrift._cli.status import ExitCode
from zerodrift.errors import ConfigError

__all__ = ["register"]

_SOURCES = ("node", "fim", "gate")


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``findings [list|show ID|resolve ID... --reason TEXT]``."""
    parser = add_command(
        subparsers,
        common,
        "findings",
        run,
        help="list, show or resolve the findings of every detector",
        epilog="examples:\n  zerodrift findings\n"
        "  zerodrift findings list --source gate --status all --format json\n"
        "  zerodrift findings show 3f2a9c\n"
        "  zerodrift findings resolve 3f2a9c 81d0e2 --reason 'test host, "
        "rebuilt'\n\n"
        "A finding is one deviation: the detector, the kind, the environment\n"
        "and the subject. Seen again while open, it is updated (last seen,\n"
        "times seen, latest evidence) rather than stored again. It is\n"
        "resolved by a response (zerodrift respond), by the detector when\n"
        "the deviation is gone (a later gate run passes, fim check finds the\n"
        "file as the signed baseline says, fim update accepts it), or by\n"
        "hand with 'resolve' and a reason, which the audit trail keeps.",
    )
    parser.add_argument(
        "action", nargs="?", choices=["list", "show", "resolve"], default="list"
    )
    parser.add_argument("ids", nargs="*", metavar="ID", help="finding id or prefix")
    add_env(parser)
    parser.add_argument(
        "--source", choices=_SOURCES, help="only findings of this detector"
    )
    parser.add_argument(
        "--status",
        choices=["open", "resolved", "all"],
        default="open",
        help="which findings to list (default: open)",
    )
    parser.add_argument(
        "--reason", help="why the findings no longer need attention (resolve)"
    )
    add_format(parser)


def run(ctx: Context) -> int:
    """List, show or resolve findings."""
    args = ctx.args
    if args.action == "show":
        return _show(ctx)
    if args.action == "resolve":
        return _resolve(ctx)
    if args.ids:
        raise ConfigError(
            "findings list takes no ids",
            hint="use 'zerodrift findings show ID'",
            reference="findings-usage",
        )
    return _list(ctx)


def _list(ctx: Context) -> int:
    from zerodrift.detect.findings import list_findings

    args = ctx.args
    rows = list(
        list_findings(
            ctx.db,
            source=args.source,
            status=None if args.status == "all" else args.status,
            environment=args.env,
        )
    )
    if args.format == "json":
        emit_json("findings", {"findings": rows})
        return ExitCode.OK
    table(
        f"Findings ({args.status})",
        ["id", "found", "last seen", "seen", "severity", "source", "subject", "kind"],
        [
            (
                r["id"][:12],
                r["found_at"][:19],
                (r["last_seen_at"] or r["found_at"])[:19],
                str(r["times_seen"] or 1),
                r["severity"],
                r["source"],
                r["subject"],
                r["kind"],
            )
            for r in rows
        ],
    )
    return ExitCode.OK


def _show(ctx: Context) -> int:
    import json

    from zerodrift._cli.output import console
    from zerodrift.detect.findings import get_finding

    if len(ctx.args.ids) != 1:
        raise ConfigError(
            "findings show needs one finding id",
            hint="list them with 'zerodrift findings'",
            reference="findings-usage",
        )
    row = get_finding(ctx.db, ctx.args.ids[0])
    if ctx.args.format == "json":
        emit_json("finding", row)
        return ExitCode.OK
    out = console()
    for key in (
        "id",
        "status",
        "severity",
        "source",
        "kind",
        "environment",
        "subject",
        "summary",
        "found_at",
        "last_seen_at",
        "times_seen",
        "resolved_at",
        "resolution",
        "incident_id",
    ):
        if row.get(key) is not None:
            out.print(f"{key:13} {row[key]}", highlight=False)
    out.print(f"{'csf':13} {', '.join(row['csf'])}", highlight=False)
    out.print("details:", highlight=False)
    out.print(json.dumps(row["details"], indent=2, sort_keys=True), highlight=False)
    return ExitCode.OK


def _resolve(ctx: Context) -> int:
    from zerodrift._cli.output import err_console
    from zerodrift.detect.findings import get_finding, resolve_findings

    args = ctx.args
    if not args.ids:
        raise ConfigError(
            "findings resolve needs at least one finding id",
            hint="list open ones with 'zerodrift findings'",
            reference="findings-usage",
        )
    reason = (args.reason or "").strip()
    if not reason:
        raise ConfigError(
            "findings resolve needs --reason",
            hint="say why they no longer need attention; the audit trail keeps it",
            reference="findings-reason-missing",
        )
    rows = [get_finding(ctx.db, prefix) for prefix in args.ids]
    resolution = f"{reason} (resolved by {ctx.audit.actor})"
    done = resolve_findings(ctx.db, [r["id"] for r in rows], resolution=resolution)
    for row in rows:
        if row["id"] in done:
            ctx.record(
                "finding.resolved",
                row["subject"],
                {"finding": row["id"], "kind": row["kind"], "reason": reason},
            )
    skipped = sorted({r["id"] for r in rows} - set(done))
    if args.format == "json":
        emit_json("findings-resolved", {"resolved": done, "already_resolved": skipped})
    else:
        err = err_console()
        err.print(f"resolved {len(done)} finding(s)")
        for item in skipped:
            err.print(f"{item} was already resolved")
    return ExitCode.OK
