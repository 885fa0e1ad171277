"""``zerodrift respond``: run the drift playbook on a node (also approval)."""

from __future__ import annotations

import argparse
from typing import Any

from zerodrift._cli.context import Context
from zerodrift._cli.options import add_command, add_env, add_format
from zerodrift._cli.output import emit_json
from zerodrift._cli.status import ExitCode
from zerodrift.errors import ConfigError

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
        "interrupted one.\n"
        "A node whose image was tampered with in podman's storage is answered\n"
        "with the whole image: every node of it is quarantined and its\n"
        "evidence kept, the image is removed from storage, reloaded from the\n"
        "verified store and redeployed; --image IMAGE does the same by image\n"
        "name or digest (also to resume an interrupted reload).",
    )
    parser.add_argument(
        "node", metavar="NODE", nargs="?", help="the drifted node's name"
    )
    parser.add_argument(
        "--image",
        metavar="IMAGE",
        help="answer the open image-tampered findings of this image (name or "
        "digest) instead of one node",
    )
    add_env(parser)
    add_format(parser)


def run(ctx: Context) -> int:
    """Respond to drift on one node."""
    from zerodrift._cli.runtime import open_session, progress_for
    from zerodrift.respond.playbook import Responder

    args = ctx.args
    if (args.node is None) == (args.image is None):
        raise ConfigError(
            "respond needs a NODE or --image IMAGE (not both)",
            hint="zerodrift incidents and zerodrift findings list what to answer",
            reference="respond-usage",
        )
    if args.image is not None and args.env is None:
        raise ConfigError(
            "respond --image needs --env",
            hint="the image is answered in one environment: add --env ENV",
            reference="respond-usage",
        )
    args.env = args.env or _environment_of(ctx, args.node)
    session = open_session(ctx)
    try:
        responder = Responder(
            session, evidence_store(ctx), ctx.record, progress_for(ctx)
        )
        if args.image is None:
            incidents = [responder.respond(args.node)]
        else:
            incidents = _answer_image(responder, args.image)
    finally:
        session.close()
    if args.format == "json":
        if args.image is None:
            emit_json("incident", incidents[0].to_dict())
        else:
            emit_json("incidents", {"incidents": [i.to_dict() for i in incidents]})
    else:
        for incident in incidents:
            render_incident(incident)
    return ExitCode.OK


def _answer_image(responder: Any, image: str) -> list[Any]:
    tampered = responder.tampered_images(image=image)
    if not tampered:
        raise ConfigError(
            f"no open image-tampered finding for image {image!r} in "
            f"{responder.session.environment}",
            hint="zerodrift check --env ENV verifies image content; zerodrift "
            "findings lists what is open",
            reference="respond-image-not-tampered",
        )
    answered: list[Any] = responder.reload_images(tampered)
    return answered


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
