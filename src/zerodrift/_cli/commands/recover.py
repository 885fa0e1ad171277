"""``zerodrift recover``: rebuild an environment from the spec at a commit."""

from __future__ import annotations

import argparse
from typing import Any

from zerodrift._cli.context import Context
from zerodrift._cli.options import add_command, add_env, add_format
from zerodrift._cli.output import console, emit_json
from zerodrift._cli.runtime import open_session, progress_for
from zerodrift._cli.status import ExitCode

__all__ = ["register"]


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``recover``."""
    parser = add_command(
        subparsers,
        common,
        "recover",
        run,
        help="rebuild an environment from the spec (at a commit) and verified images",
        epilog="examples:\n  zerodrift recover --env prod\n"
        "  zerodrift recover --env prod --at v1.4.0\n"
        "  zerodrift recover --env staging --drill   # destroy everything first\n"
        "The measured recovery time (RTO) is recorded in the state database\n"
        "and the audit trail.",
    )
    add_env(parser, required=True)
    add_format(parser)
    parser.add_argument(
        "--at", metavar="COMMIT", help="use the spec at this git commit (default: HEAD)"
    )
    parser.add_argument(
        "--drill",
        action="store_true",
        help="rehearse a disaster: destroy every node of the environment first",
    )


def run(ctx: Context) -> int:
    """Rebuild the environment and report the recovery time."""
    from zerodrift.recover import recover, resolve_commit, spec_at_commit

    commit = resolve_commit(ctx.project.root, ctx.args.at) if ctx.args.at else None
    spec = spec_at_commit(ctx.project.root, commit) if commit else None
    session = open_session(ctx, spec)
    try:
        outcome = recover(
            session,
            at_commit=commit or ctx.git.commit,
            drill=ctx.args.drill,
            progress=progress_for(ctx),
        )
    finally:
        session.close()
    if ctx.args.format == "json":
        emit_json("recovery", outcome.to_dict())
    else:
        console().print(
            f"recovered {outcome.environment}: {outcome.created} nodes created"
            + (f" after destroying {outcome.destroyed}" if outcome.drill else "")
            + f"; RTO {outcome.rto_seconds:.2f} s"
            + ("" if outcome.ok else " (FAILED: see the messages above)")
        )
    return ExitCode.OK if outcome.ok else ExitCode.OPERATIONAL
