"""``zerodrift plan``: what apply would do, like a Terraform plan."""

from __future__ import annotations

import argparse
from typing import Any

from zerodrift._cli.context import Context
from zerodrift._cli.options import add_command, add_env, add_format
from zerodrift._cli.output import console, emit_json, table
from zerodrift._cli.runtime import open_session
from zerodrift._cli.status import ExitCode

__all__ = ["register"]


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``plan``."""
    parser = add_command(
        subparsers,
        common,
        "plan",
        run,
        help="show what apply would create, replace and destroy",
        epilog="examples:\n  zerodrift plan --env prod\n"
        "  zerodrift plan --env prod --format json\n"
        "  zerodrift plan --env prod --replace api   # as apply --replace would\n"
        "There is no update action: a changed node is replaced.\n"
        "Exit code 0 when nothing would change, 1 when apply has work to do.",
    )
    add_env(parser, required=True)
    add_format(parser)
    parser.add_argument(
        "--prune", action="store_true", help="also plan to destroy unmanaged nodes"
    )
    parser.add_argument(
        "--replace",
        action="append",
        default=[],
        metavar="SERVICE",
        help="plan to replace every node of SERVICE; repeatable",
    )


def run(ctx: Context) -> int:
    """Plan the environment and print the plan."""
    session = open_session(ctx)
    try:
        plan, _desired = session.plan(prune=ctx.args.prune, replace=ctx.args.replace)
    finally:
        session.close()
    if ctx.args.format == "json":
        emit_json("plan", plan.to_dict())
    else:
        render_plan(plan)
    return ExitCode.OK if plan.empty else ExitCode.FINDINGS


def render_plan(plan: Any) -> None:
    """Print a plan as tables."""
    counts = plan.counts()
    if plan.actions:
        table(
            f"Plan for {plan.environment}",
            ["action", "service", "node", "reason", "image"],
            [
                (a.kind, a.service, a.node, a.reason, _image_change(a))
                for a in plan.actions
            ],
        )
    if plan.unmanaged:
        table(
            "Unmanaged nodes",
            ["node", "id", "reason"],
            [(u.name, u.node_id[:12], u.reason) for u in plan.unmanaged],
        )
    if plan.empty:
        console().print(
            f"No changes: {plan.unchanged} node(s) of {plan.environment} "
            "match the spec."
        )
        return
    console().print(
        f"{counts['create']} to create, {counts['replace']} to replace, "
        f"{counts['destroy']} to destroy, {plan.unchanged} unchanged"
    )
    if any(a.reason == "drifted" for a in plan.actions):
        console().print(
            f"what drifted: zerodrift check --env {plan.environment} "
            "(apply replaces the nodes; respond also keeps evidence)"
        )


def _short(digest: str | None) -> str:
    return digest[7:19] if digest and digest.startswith("sha256:") else "?"


def _image_change(action: Any) -> str | None:
    if action.kind == "create":
        return _short(action.image_digest)
    if action.kind == "replace":
        if action.previous_digest == action.image_digest:
            return _short(action.image_digest)
        return f"{_short(action.previous_digest)} -> {_short(action.image_digest)}"
    return None
