"""``zerodrift check``: compare running nodes with their signed declaration once."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from zerodrift._cli.context import Context
from zerodrift._cli.options import add_command, add_env, add_format
from zerodrift._cli.output import console, emit_json, table
from zerodrift._cli.status import ExitCode

__all__ = ["register"]


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``check``."""
    parser = add_command(
        subparsers,
        common,
        "check",
        run,
        help="detect drift of running nodes from the spec and signed images",
        epilog="examples:\n  zerodrift check --env prod\n"
        "  zerodrift check --env prod --format ocsf >> findings.jsonl\n"
        "  zerodrift check --env prod --no-image-content   # nodes only\n"
        "Checks each node's live configuration (image digest, env, mounts,\n"
        "capabilities, user, read-only root, networks, ports, limits), files\n"
        "changed outside its writable paths, executables inside them,\n"
        "processes not started by its entrypoint, and missing, unrecorded or\n"
        "unmanaged nodes. It also re-reads the content of every image the\n"
        "nodes use from podman's storage and verifies it in full against the\n"
        "image's signed golden manifest (each image once, however many nodes\n"
        "use it); --no-image-content skips that for a quicker node-only check.\n"
        "Without --env, every environment apply has deployed.\n"
        "Findings are stored, written to the audit trail, and printed;\n"
        "--format ocsf prints one OCSF Detection Finding per line, followed\n"
        "by a File System Activity event per file it names.\n"
        "With --respond, each drifted node's response policy applies: 'auto'\n"
        "replaces it (see zerodrift respond), 'approve' opens an incident\n"
        "that waits for zerodrift respond NODE, 'alert' only reports.\n"
        "Exit code 0 when nothing is found, 1 when anything is.",
    )
    add_env(parser)
    add_format(parser, "ocsf")
    parser.add_argument(
        "--image-content",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="verify image content on disk against the signed golden manifests "
        "(default: on)",
    )
    parser.add_argument(
        "--respond",
        action="store_true",
        help="apply each service's response policy to what is found",
    )


def run(ctx: Context) -> int:
    """Check the environments and report what was found."""
    from zerodrift._cli.runtime import open_session
    from zerodrift.detect.check import CheckResult, check_environment
    from zerodrift.respond.incidents import quarantined_nodes

    results: list[CheckResult] = []
    for environment in _environments(ctx):
        ctx.args.env = environment
        session = open_session(ctx)
        try:
            result = check_environment(
                session,
                skip=quarantined_nodes(ctx.db, environment),
                image_content=ctx.args.image_content,
            )
            result = _record(ctx, environment, result)
            if ctx.args.respond:
                _respond(ctx, session, result)
        finally:
            session.close()
        results.append(result)
    _render(ctx.args.format, results)
    found = any(r.findings for r in results)
    return ExitCode.FINDINGS if found else ExitCode.OK


def _record(ctx: Context, environment: str, result: Any) -> Any:
    """Store the findings and write the new ones to the audit trail.

    Returns:
        The result with its findings as stored: one seen again while still
        open keeps the id of its occurrence.
    """
    from dataclasses import replace

    from zerodrift.detect.findings import record_findings

    recorded = record_findings(ctx.db, result.findings)
    new = set(recorded.new)
    result = replace(result, findings=recorded.findings)
    for finding in result.findings:
        if finding.id in new:
            ctx.record(
                "finding.raised",
                finding.subject,
                {
                    "finding": finding.id,
                    "kind": finding.kind,
                    "severity": finding.severity.label,
                    "environment": environment,
                },
            )
    record_finished(ctx, environment, result)
    return result


def record_finished(ctx: Context, environment: str, result: Any) -> None:
    """Write ``check.finished`` (what compliance counts as monitoring)."""
    details: dict[str, Any] = {
        "nodes": result.nodes,
        "findings": len(result.findings),
    }
    if result.content is not None:
        details["image_content"] = result.content.to_dict()
    ctx.record("check.finished", environment, details)


def _respond(ctx: Context, session: Any, result: Any) -> None:
    """Apply the response policies to what the check found."""
    from zerodrift._cli.commands.respond import evidence_store
    from zerodrift._cli.runtime import progress_for
    from zerodrift.respond.playbook import Responder, answer_findings

    responder = Responder(session, evidence_store(ctx), ctx.record, progress_for(ctx))
    for incident in answer_findings(responder, result.findings):
        progress_for(ctx)(
            f"incident {incident.id} on {incident.node}: {incident.status}"
        )


def ocsf_finding(finding: Any) -> dict[str, Any]:
    """A finding as an OCSF Detection Finding about a container or an image."""
    from zerodrift.detect.content import SOURCE as IMAGE_SOURCE
    from zerodrift.detect.findings import to_ocsf

    kind = "image" if finding.source == IMAGE_SOURCE else "container"
    return to_ocsf(finding, resource_type=kind)


def _environments(ctx: Context) -> list[str]:
    """``--env``, or every environment apply has deployed nodes to."""
    if ctx.args.env:
        return [ctx.args.env]
    from zerodrift.reconcile.journal import Journal

    return [
        name
        for name in sorted(ctx.spec.fleet.environments)
        if Journal(ctx.db, name).recorded_facts()
    ]


def _render(output: str, results: list[Any]) -> None:
    from zerodrift.detect.findings import ocsf_file_activities

    if output == "ocsf":
        for result in results:
            for finding in result.findings:
                events = (ocsf_finding(finding), *ocsf_file_activities(finding))
                for event in events:
                    sys.stdout.write(json.dumps(event, sort_keys=True) + "\n")
        return
    if output == "json":
        emit_json("check", {"environments": [r.to_dict() for r in results]})
        return
    if not results:
        console().print("Nothing to check: apply has deployed no environment yet.")
        return
    for result in results:
        if result.findings:
            table(
                f"Drift in {result.environment}",
                ["severity", "node", "kind", "summary", "csf"],
                [
                    (
                        f.severity.label,
                        f.subject,
                        f.kind,
                        f.summary,
                        " ".join(f.csf),
                    )
                    for f in sorted(result.findings, key=lambda f: -f.severity)
                ],
            )
        images = ""
        if result.content is not None:
            images = (
                f", {len(result.content.images)} image(s) verified on disk "
                f"({result.content.files_hashed} files hashed)"
            )
        console().print(
            f"{result.environment}: {result.nodes} node(s) checked{images} in "
            f"{result.seconds:.2f} s, {len(result.findings)} finding(s)"
        )
        for name in result.truncated:
            console().print(
                f"warning: node {name} holds more files in its writable paths "
                "than were listed (every executable among them was)"
            )
        if any(f.kind == "image-tampered" for f in result.findings):
            console().print(
                "image content in podman's storage was tampered with: replacing "
                "the nodes would reuse it. --respond (all services 'auto') "
                "removes and reloads the image; by hand: zerodrift respond "
                "--image IMAGE --env ENV (docs/detect.md)."
            )
