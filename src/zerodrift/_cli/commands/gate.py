"""``zerodrift gate``: the CI check that rejects changes that are not verified."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerodrift._cli.context import Context
from zerodrift._cli.options import add_command, add_env, add_format
from zerodrift._cli.output import emit_json
from zerodrift._cli.status import ExitCode

if TYPE_CHECKING:
    from zerodrift.gate import GateReport, ImageEvidence

__all__ = ["register"]

_EPILOG = """\
examples:
  zerodrift gate --env prod
  zerodrift gate --env prod --plan plan.json --manifests k8s/
  zerodrift gate --format sarif --output gate.sarif --manifests rendered.yaml

Rules, policy (enforce | warn | off per environment), waivers and CI pipeline
examples: docs/gate.md.

exit codes: 0 passed (warnings allowed), 1 rejected (an enforced rule failed,
including an invalid spec), 2 usage error, 3 unreadable or malformed input
(plan, manifest, unknown environment), 4 operational failure (git missing).
"""


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``gate``."""
    parser = add_command(
        subparsers,
        common,
        "gate",
        run,
        help="reject changes that are not verified (CI check)",
        description="Check the committed spec, its images, Terraform plans and "
        "Kubernetes manifests against the spec's policy; exit 1 when the change "
        "must not be deployed. Each run is recorded in the audit trail.",
        epilog=_EPILOG,
    )
    add_env(parser)
    add_format(parser, "sarif", "junit")
    parser.add_argument(
        "--plan",
        action="extend",
        nargs="+",
        type=Path,
        default=[],
        metavar="FILE",
        help="Terraform plan as JSON ('terraform show -json PLANFILE'); repeatable",
    )
    parser.add_argument(
        "--manifests",
        action="extend",
        nargs="+",
        type=Path,
        default=[],
        metavar="PATH",
        help="rendered Kubernetes manifests: files or folders; repeatable",
    )
    parser.add_argument(
        "--output",
        "-o",
        type=Path,
        metavar="FILE",
        help="write the report (in --format) to FILE; a summary still goes to stdout",
    )


def run(ctx: Context) -> int:
    """Evaluate the gate, record the verdict, and print the report."""
    from zerodrift.gate import GateRequest, run_gate

    args = ctx.args
    request = GateRequest(
        root=ctx.project.root,
        environment=args.env,
        plans=args.plan,
        manifests=args.manifests,
        evidence=_evidence(ctx),
    )
    report = run_gate(request)
    _record(ctx, report)
    _emit(report, args.format, args.output, brief=getattr(args, "quiet", 0) > 0)
    return ExitCode.FINDINGS if report.rejected else ExitCode.OK


def _evidence(ctx: Context) -> ImageEvidence:
    """The project's image store as evidence for the image rules.

    With no store yet (nothing built), every image is missing from the store.
    """
    from zerodrift.oci.layout import Layout
    from zerodrift.protect.evidence import EmptyStore, StoreEvidence

    store = ctx.project.store_dir
    if not store.exists():
        return EmptyStore()
    return StoreEvidence(Layout.open(store), ctx.trusted_keys(), ctx.audit)


def _record(ctx: Context, report: GateReport) -> None:
    """Store failures as findings and the verdict in the audit trail.

    Findings of earlier runs that this run judged again and did not raise
    are resolved.
    """
    from zerodrift.detect.findings import record_findings, resolve_unseen
    from zerodrift.gate.results import judged_again, to_findings
    from zerodrift.state import utc_now

    args = ctx.args
    now = utc_now()
    recorded = record_findings(ctx.db, to_findings(report, now))
    findings = recorded.new
    resolved = resolve_unseen(
        ctx.db,
        source="gate",
        environment=report.environment,
        covers=judged_again(report),
        seen=(f.fingerprint for f in recorded.findings),
        resolution="passed a later gate run",
        at=now,
    )
    failed = [f"{r.rule}:{r.target}" for r in report.failures()]
    details = {
        "verdict": report.verdict,
        "counts": report.counts(),
        "failed": failed[:100],
        "findings": len(findings),
        "resolved_findings": resolved[:100],
        "plans": [str(p) for p in args.plan],
        "manifests": [str(p) for p in args.manifests],
        "commit": ctx.git.commit,
        # What was judged: a deployment of other digests at this commit was
        # not gated (see the gate-passed-before-deploy control).
        "images": {name: d for name, d in report.images.items() if d is not None},
    }
    ctx.record("gate.run", args.env or "*", details)


def _emit(report: GateReport, fmt: str, output: Path | None, *, brief: bool) -> None:
    from zerodrift._internal.atomic import write_atomic
    from zerodrift.gate.render import to_json_text, to_junit, to_sarif, to_text

    if fmt == "table":
        body = to_text(report, brief=brief)
    elif fmt == "sarif":
        body = to_json_text(to_sarif(report))
    elif fmt == "junit":
        body = to_junit(report)
    elif output is None:
        emit_json("gate-report", report.to_dict())
        return
    else:
        from zerodrift._cli.output import JSON_SCHEMA_VERSION

        document = {
            "schema_version": JSON_SCHEMA_VERSION,
            "kind": "gate-report",
            **report.to_dict(),
        }
        body = to_json_text(document)
    if output is None:
        sys.stdout.write(body)
        return
    write_atomic(output, body.encode("utf-8"))
    sys.stdout.write(to_text(report, brief=brief) if fmt != "table" else body)
    sys.stderr.write(f"report written to {output}\n")
