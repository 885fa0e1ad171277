"""``zerodrift incidents``: list and show drift incidents."""

from __future__ import annotations

import argparse
from typing import Any

from zerodrift._cli.context import Context
from zerodrift._cli.options import add_command, add_env, add_format
from zerodrift._cli.output import emit_json, table
from zerodrift._cli.status import ExitCode

__all__ = ["register"]


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``incidents [list|show ID]``."""
    parser = add_command(
        subparsers,
        common,
        "incidents",
        run,
        help="list drift incidents, or show one with its evidence",
        epilog="examples:\n  zerodrift incidents\n"
        "  zerodrift incidents list --env prod --format json\n"
        "  zerodrift incidents show 3f2a9c\n"
        "Times: 'detect' runs from the earliest changed file to the finding,\n"
        "'recover' from the finding to a verified clean replacement.",
    )
    parser.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    parser.add_argument("incident", nargs="?", metavar="ID", help="incident id")
    add_env(parser)
    add_format(parser)


def run(ctx: Context) -> int:
    """List or show incidents."""
    from zerodrift._cli.output import err_console
    from zerodrift.respond.incidents import get_incident, list_incidents

    if ctx.args.action == "show":
        if not ctx.args.incident:
            err_console().print(
                "error: incidents show needs an incident id "
                "(list them with zerodrift incidents)"
            )
            return ExitCode.USAGE
        incident = get_incident(ctx.db, ctx.args.incident)
        if ctx.args.format == "json":
            emit_json("incident", incident.to_dict())
        else:
            from zerodrift._cli.commands.respond import render_incident

            render_incident(incident)
        return ExitCode.OK
    found = list(list_incidents(ctx.db, ctx.args.env))
    if ctx.args.format == "json":
        emit_json("incidents", {"incidents": [i.to_dict() for i in found]})
        return ExitCode.OK
    table(
        "Incidents",
        ["id", "opened", "env", "node", "status", "step", "detect s", "recover s"],
        [
            (
                i.id,
                i.opened_at[:19],
                i.environment,
                i.node,
                i.status,
                i.step,
                _seconds(i.ttd_seconds),
                _seconds(i.ttr_seconds),
            )
            for i in found
        ],
    )
    return ExitCode.OK


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
