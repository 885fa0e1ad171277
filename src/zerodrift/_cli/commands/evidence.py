"""``zerodrift evidence``: export an incident's evidence, verify an export."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from zerodrift._cli.context import Context
from zerodrift._cli.options import add_command, add_format
from zerodrift._cli.output import console, emit_json
from zerodrift._cli.status import ExitCode

__all__ = ["register"]


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``evidence export|verify``."""
    parser = add_command(
        subparsers,
        common,
        "evidence",
        None,
        help="export an incident's evidence as a signed archive; verify one",
        epilog="examples:\n  zerodrift evidence export 3f2a9c -o incident.tar\n"
        "  zerodrift evidence verify incident.tar\n"
        "The archive holds every captured item, a manifest of their SHA-256\n"
        "digests, and a DSSE envelope over the manifest signed with the\n"
        "project key. verify exits 1 when anything was altered.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = add_command(
        actions, common, "export", _export, help="write an incident's evidence archive"
    )
    export.add_argument("incident", metavar="INCIDENT", help="incident id (prefix)")
    export.add_argument(
        "-o",
        "--output",
        type=Path,
        help="archive to write (default: evidence-INCIDENT.tar)",
    )
    add_format(export)
    verify = add_command(
        actions, common, "verify", _verify, help="check an evidence archive"
    )
    verify.add_argument("archive", metavar="ARCHIVE", type=Path)
    add_format(verify)


def _export(ctx: Context) -> int:
    from zerodrift._cli.commands.respond import evidence_store
    from zerodrift.errors import ConfigError
    from zerodrift.protect.dsse import sign_payload
    from zerodrift.respond.evidence import MANIFEST_PAYLOAD_TYPE, export_archive
    from zerodrift.respond.incidents import get_incident

    incident = get_incident(ctx.db, ctx.args.incident)
    if not incident.evidence:
        raise ConfigError(
            f"incident {incident.id} has no evidence yet (step {incident.step})",
            hint=f"run zerodrift respond {incident.node}",
            reference="evidence-not-captured",
        )
    store = evidence_store(ctx)
    envelope = sign_payload(
        store.get(incident.evidence), MANIFEST_PAYLOAD_TYPE, ctx.signer()
    )
    out = ctx.args.output or Path(f"evidence-{incident.id}.tar")
    count = export_archive(store, incident.evidence, envelope, out)
    ctx.record(
        "evidence.exported",
        incident.node,
        {"incident": incident.id, "manifest": incident.evidence, "archive": str(out)},
    )
    if ctx.args.format == "json":
        emit_json(
            "evidence-export",
            {"incident": incident.id, "archive": str(out), "items": count},
        )
    else:
        console().print(f"wrote {out}: {count} item(s), manifest signed")
    return ExitCode.OK


def _verify(ctx: Context) -> int:
    from zerodrift.protect.dsse import verify_envelope
    from zerodrift.respond.evidence import MANIFEST_PAYLOAD_TYPE, verify_archive

    keys = ctx.trusted_keys()

    def check(envelope: dict[str, Any]) -> bytes:
        return verify_envelope(envelope, keys, payload_type=MANIFEST_PAYLOAD_TYPE)

    manifest = verify_archive(ctx.args.archive, check)
    if ctx.args.format == "json":
        emit_json("evidence-verify", {"archive": str(ctx.args.archive), **manifest})
    else:
        console().print(
            f"{ctx.args.archive}: signature trusted, "
            f"{len(manifest['items'])} item(s) intact "
            f"(incident {manifest['incident']})"
        )
    return ExitCode.OK
