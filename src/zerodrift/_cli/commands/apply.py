"""``zerodrift apply``: converge an environment by replacement, surge first."""

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
    """Add ``apply``."""
    parser = add_command(
        subparsers,
        common,
        "apply",
        run,
        help="create, replace and destroy nodes until the environment matches the spec",
        epilog="examples:\n  zerodrift apply --env prod\n"
        "  zerodrift apply --env prod --prune   # also destroy unmanaged nodes\n"
        "  zerodrift apply --env prod --replace api   # roll api, e.g. new secret\n"
        "New nodes must pass their health check before old ones are destroyed;\n"
        "if they never do, the previous nodes are restored. Progress goes to\n"
        "stderr, every step to the audit trail.",
    )
    add_env(parser, required=True)
    add_format(parser)
    parser.add_argument(
        "--prune", action="store_true", help="also destroy unmanaged nodes"
    )
    parser.add_argument(
        "--replace",
        action="append",
        default=[],
        metavar="SERVICE",
        help="replace every node of SERVICE even if nothing else calls for it "
        "(after rotating a secret's value, say); repeatable",
    )


def run(ctx: Context) -> int:
    """Apply the plan of the environment."""
    ctx.note_spec_revision()
    session = open_session(ctx)
    try:
        plan, result = session.apply(
            prune=ctx.args.prune,
            replace=ctx.args.replace,
            progress=progress_for(ctx),
        )
    finally:
        session.close()
    if ctx.args.format == "json":
        emit_json("apply", {"plan": plan.to_dict(), **result.to_dict()})
    else:
        console().print(
            f"{'applied' if result.ok else 'FAILED'}: {len(result.created)} created, "
            f"{len(result.destroyed)} destroyed"
            + (
                f", rolled back: {', '.join(result.rolled_back)}"
                if result.rolled_back
                else ""
            )
            + f" in {result.seconds:.1f} s"
        )
        for failure in result.failures:
            console().print(f"  {failure}")
        if plan.unmanaged and not ctx.args.prune:
            console().print(
                f"{len(plan.unmanaged)} unmanaged node(s) left running; "
                "see 'zerodrift plan' and use --prune to destroy them"
            )
    return ExitCode.OK if result.ok else ExitCode.OPERATIONAL
