"""``zerodrift respond``: run the drift playbook on a node (also approval)."""

from __future__ import annotations

import argparse
from typing import Any

from zerodrift._cli.context import Context
from zerodrift._cli.options import add_command, add_env, add_format
from zerodrift._cli.output import emit_json
from zerodrift._cli.status import ExitCode

__all__ = ["evidence_store", "register", "render_incident"]


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``respond``."""
    parser = add_command(
        subparsers,
        common,
        "respond",
        run,
        help="replace a drifted node, keeping evidence (manual trigger or approval)",
        epilog="examples:\n  zerodrift respond shop-prod-api-3f2a9c\n"
        "  zerodrift respond shop-prod-db-81d0e2 --env prod --format json\n"
        "Creates a healthy replacement first, quarantines the node (networks\n"
        "cut, processes paused), stores its inspect data, changed files,\n"
        "processes, logs and findings content-addressed under\n"
        ".zerodrift/evidence, destroys it, and verifies the replacement.\n"
        "Approves an incident waiting under the 'approve' policy; resumes an\n"
        "interrupted one.",
    )
    parser.add_argument("node", metavar="NODE", help="the drifted node's name")
    add_env(parser)
    add_format(parser)


def run(ctx: Context) -> int:
    """Respond to drift on one node."""
    from zerodrift._cli.runtime import open_session, progress_for
    from zerodrift.respond.playbook import Responder

    ctx.args.env = ctx.args.env or _environment_of(ctx, ctx.args.node)
    session = open_session(ctx)
    try:
        responder = Responder(
            session, evidence_store(ctx), ctx.record, progress_for(ctx)
        )
        incident = responder.respond(ctx.args.node)
    finally:
        session.close()
    if ctx.args.format == "json":
        emit_json("incident", incident.to_dict())
    else:
        render_incident(incident)
    return ExitCode.OK


def evidence_store(ctx: Context) -> Any:
    """The project's evidence store."""
    from zerodrift.respond.evidence import EvidenceStore

    return EvidenceStore(ctx.project.state_dir / "evidence")


def render_incident(incident: Any) -> None:
    """Print one incident for people."""
    from zerodrift._cli.output import console

    out = console()
    out.print(f"incident {incident.id}: {incident.status} ({incident.step})")
    out.print(
        f"  node        {incident.node} ({incident.environment}/{incident.service})"
    )
    out.print(f"  policy      {incident.policy}")
    out.print(f"  detected    {incident.detected_at}")
    if incident.replacement:
        out.print(f"  replacement {incident.replacement}")
    if incident.evidence:
        out.print(f"  evidence    {incident.evidence}")
    if incident.ttd_seconds is not None:
        out.print(f"  detect time {incident.ttd_seconds:.3f} s")
    if incident.ttr_seconds is not None:
        out.print(f"  recovery    {incident.ttr_seconds:.3f} s")
    for finding in incident.findings:
        out.print(f"  - {finding['severity']}: {finding['summary']}")


def _environment_of(ctx: Context, node: str) -> str:
    from zerodrift.errors import ConfigError
    from zerodrift.reconcile.journal import Journal

    for name in sorted(ctx.spec.fleet.environments):
        if node in Journal(ctx.db, name).recorded_facts():
            return name
    raise ConfigError(
        f"no environment has a node named {node!r}",
        hint="give --env, and check the name with zerodrift inventory",
        reference="node-unknown",
    )
