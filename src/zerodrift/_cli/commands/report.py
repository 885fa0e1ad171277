"""``zerodrift report``: NIST CSF 2.0 / CSF 1.1 / SP 800-53 compliance reports."""

from __future__ import annotations

import argparse
import hashlib
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerodrift._cli.context import Context
from zerodrift._cli.options import add_command, add_env
from zerodrift._cli.output import console, emit_json, err_console, table
from zerodrift._cli.status import ExitCode
from zerodrift.errors import ConfigError
from zerodrift.state import format_time, utc_now

if TYPE_CHECKING:
    from zerodrift.comply.report import Report

__all__ = ["register"]

_FORMATS = ("table", "json", "csv", "html", "oscal", "oscal-components", "sarif")
_FRAMEWORKS = ("csf-2.0", "csf-1.1", "sp800-53r5")
_MAX_ROWS = 40
# Short column names for the terminal, in the order of coverage.STATUS_ORDER.
_SHORT = ("fail", "expired", "missing", "none", "attested", "pass")

_EPILOG = """\
examples:
  zerodrift report                                 CSF 2.0 summary in the terminal
  zerodrift report --format html --output csf.html one self-contained page
  zerodrift report --framework sp800-53r5 --format oscal --output ar.json
  zerodrift report --format sarif --env prod > compliance.sarif
  zerodrift report --at 2026-11-30T18:00:00Z       as of a past time
  zerodrift report --runs                          stored runs
  zerodrift report --diff 3f2a9c 81bd07            what changed between two runs

Statuses: automated-pass, automated-fail, attested, attestation-expired,
attestation-missing, not-covered (see docs/comply.md). Exit code 1 when any
item is automated-fail. Each run is stored and recorded in the audit trail.
"""


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``report``."""
    parser = add_command(
        subparsers,
        common,
        "report",
        run,
        help="report NIST CSF / SP 800-53 compliance from recorded evidence",
        epilog=_EPILOG,
    )
    parser.add_argument(
        "--framework",
        choices=_FRAMEWORKS,
        default="csf-2.0",
        help="framework to report against (default: csf-2.0)",
    )
    add_env(parser)
    parser.add_argument(
        "--at",
        metavar="TIME",
        help="use only evidence recorded up to TIME (ISO 8601, UTC if no zone)",
    )
    parser.add_argument(
        "--format",
        choices=_FORMATS,
        default="table",
        help=f"output format: {', '.join(_FORMATS)} (default: table)",
    )
    parser.add_argument(
        "--output", "-o", type=Path, metavar="FILE", help="write the report to FILE"
    )
    parser.add_argument(
        "--sign",
        action="store_true",
        help="wrap the report in a DSSE envelope signed with the project key",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--diff",
        nargs=2,
        metavar=("RUN_A", "RUN_B"),
        help="show what changed between two stored runs",
    )
    group.add_argument("--runs", action="store_true", help="list stored report runs")


def run(ctx: Context) -> int:
    """Evaluate, render, store the run, record it in the audit trail."""
    args = ctx.args
    if args.runs:
        return _list_runs(ctx)
    if args.diff:
        return _diff(ctx, *args.diff)
    _check_options(args)
    report = _evaluate(ctx)
    from zerodrift.comply.runs import new_run_id, record_run

    run_id = new_run_id()
    text = _document(report, args.format, run_id)
    content = text.encode() if text is not None else b""
    if args.sign:
        content = _signed(ctx, content, args.format)
    # A table is for people; its run is identified by the JSON it shows.
    digested = content or (_document(report, "json", run_id) or "").encode()
    digest = "sha256:" + hashlib.sha256(digested).hexdigest()
    # Written first: a run is stored and audited only once its output exists.
    _emit(ctx, report, text, content, run_id)
    record_run(ctx.db, report, args.format, digest, run_id=run_id)
    ctx.record(
        "report.generated",
        report.coverage.framework.key,
        {
            "run": run_id,
            "format": args.format,
            "environment": report.environment,
            "as_of": report.as_of,
            "content_digest": digest,
            "signed": bool(args.sign),
            "output": str(args.output) if args.output else None,
            "counts": report.coverage.counts(),
        },
    )
    return ExitCode.FINDINGS if report.failed else ExitCode.OK


def _check_options(args: argparse.Namespace) -> None:
    if args.format == "table" and (args.output or args.sign):
        raise ConfigError(
            "the table format is for the terminal; it cannot be written or signed",
            hint="choose --format json, csv, html, oscal or sarif",
            reference="report-format-unsuitable",
        )


def _evaluate(ctx: Context) -> Report:
    from zerodrift.comply.attestations import load_attestations
    from zerodrift.comply.catalogs import load_catalogs
    from zerodrift.comply.evidence import Evidence
    from zerodrift.comply.report import build_report

    args = ctx.args
    spec = ctx.spec
    if args.env and args.env not in spec.fleet.environments:
        raise ConfigError(
            f"environment {args.env!r} is not declared in the spec",
            hint=f"declared: {', '.join(sorted(spec.fleet.environments)) or 'none'}",
            reference="environment-unknown",
        )
    now = utc_now()
    as_of = _parse_at(args.at, now) if args.at else now
    catalogs = load_catalogs()
    policy = spec.fleet.compliance
    attestations = load_attestations(ctx.project.resolve(policy.attestations), catalogs)
    evidence = Evidence(
        db=ctx.db,
        as_of=as_of,
        environment=args.env,
        spec=spec,
        policy=policy,
        keys=ctx.trusted_keys,
        witness=ctx.witness_path,
        historical=args.at is not None,
        store=ctx.project.store_dir,
        evidence_store=ctx.project.state_dir / "evidence",
    )
    return build_report(
        catalogs, args.framework, evidence, attestations, generated_at=now
    )


def _parse_at(text: str, now: str) -> str:
    try:
        moment = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError as exc:
        raise ConfigError(
            f"--at {text!r} is not a time",
            hint="use ISO 8601, e.g. 2026-11-30 or 2026-11-30T18:00:00Z",
            reference="report-time-invalid",
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    formatted = format_time(moment)
    if formatted > now:
        raise ConfigError(
            f"--at {text!r} is in the future",
            hint="evidence exists only up to now; omit --at for a current report",
            reference="report-time-invalid",
        )
    return formatted


def _document(report: Report, fmt: str, run_id: str) -> str | None:
    from zerodrift.comply.formats import render

    return None if fmt == "table" else render(report, fmt, run_id=run_id)


def _signed(ctx: Context, content: bytes, fmt: str) -> bytes:
    from zerodrift.protect.dsse import envelope_to_json, sign_payload

    payload_type = f"application/vnd.zerodrift.compliance-report.v1+{fmt}"
    envelope = sign_payload(content, payload_type, ctx.signer())
    return (envelope_to_json(envelope) + "\n").encode()


def _emit(
    ctx: Context, report: Report, text: str | None, content: bytes, run_id: str
) -> None:
    args = ctx.args
    if text is None:
        _print_tables(report)
    elif args.output:
        from zerodrift._internal.atomic import write_atomic

        write_atomic(args.output, content)
    else:
        sys.stdout.buffer.write(content)
        sys.stdout.flush()
    counts = report.coverage.counts()
    note = (
        f"report run {run_id[:12]}: {counts['automated-fail']} failed, "
        f"{counts['automated-pass']} passed, {counts['attested']} attested, "
        f"{counts['not-covered']} not covered"
    )
    if args.output:
        note += f"; written to {args.output}"
    if not any(r.evidence for r in report.coverage.results):
        note += "\nno evidence recorded yet: run 'zerodrift inventory' to start"
    err_console().print(note, markup=False)


def _print_tables(report: Report) -> None:
    coverage = report.coverage
    framework = coverage.framework
    scope = f"environment {report.environment}" if report.environment else "all envs"
    console().print(
        f"{framework.title}: evidence as of {report.as_of}, {scope}", markup=False
    )
    summary = coverage.summary()
    statuses = list(_SHORT)
    rows = sorted(summary["functions"], key=lambda f: _badness(f["counts"]))
    table(
        "Per function (failing first)",
        ["function", "total", *statuses],
        [
            (f"{f['id']} {f['name'].title()}", f["total"], *f["counts"].values())
            for f in rows
        ],
    )
    _print_categories(report, statuses)
    _print_items(report)
    table(
        "Controls",
        ["control", "outcome", "CSF 2.0", "summary"],
        [
            (r.control, r.outcome.value, ", ".join(c.csf), r.summary)
            for r, c in zip(coverage.results, coverage.controls, strict=True)
        ],
    )
    table(
        "Overall",
        ["total", *statuses],
        [(summary["total"], *summary["counts"].values())],
    )
    console().print(
        "fail = automated-fail, expired/missing = attestation expired/missing, "
        "none = not covered, pass = automated-pass",
        markup=False,
    )


def _badness(counts: dict[str, int]) -> tuple[int, ...]:
    return tuple(-counts[key] for key in list(counts)[:4])


def _print_categories(report: Report, statuses: list[str]) -> None:
    coverage = report.coverage
    rows = []
    hidden = 0
    for category in coverage.framework.categories:
        members = [s for s in coverage.items if s.item.category == category.id]
        counts = coverage.counts(members)
        if counts["not-covered"] == len(members) and len(coverage.items) > 200:
            hidden += 1
            continue
        rows.append((category, len(members), counts))
    rows.sort(key=lambda row: _badness(row[2]))
    title = "Per category (failing first)"
    if hidden:
        title += f"; {hidden} wholly not-covered categories not shown"
    table(
        title,
        ["category", "total", *statuses],
        [(c.id, n, *counts.values()) for c, n, counts in rows],
    )


def _print_items(report: Report) -> None:
    from zerodrift.comply.coverage import STATUS_ORDER, Status

    wanted = (Status.FAIL, Status.EXPIRED, Status.MISSING)
    items = sorted(
        (s for s in report.coverage.items if s.status in wanted),
        key=lambda s: STATUS_ORDER.index(s.status),
    )
    if not items:
        return
    shown = items[:_MAX_ROWS]
    title = "Items needing action"
    if len(items) > len(shown):
        title += f" (first {len(shown)} of {len(items)}; --format json lists all)"
    table(
        title,
        ["item", "status", "reason"],
        [(s.item.id, s.status.value, s.reason) for s in shown],
    )


def _list_runs(ctx: Context) -> int:
    from zerodrift.comply.runs import list_runs

    runs = list_runs(ctx.db)
    if ctx.args.format == "json":
        emit_json("report-runs", {"runs": [r.to_dict() for r in runs]})
        return ExitCode.OK
    table(
        "Report runs (newest first)",
        ["run", "created", "framework", "env", "as of", "format", "failed"],
        [
            (
                r.id[:12],
                r.created_at,
                r.framework,
                r.environment,
                r.as_of,
                r.format,
                r.failed,
            )
            for r in runs
        ],
    )
    return ExitCode.OK


def _diff(ctx: Context, first: str, second: str) -> int:
    from zerodrift.comply.runs import diff_runs, get_run

    diff = diff_runs(get_run(ctx.db, first), get_run(ctx.db, second))
    if ctx.args.format == "json":
        emit_json("report-diff", diff)
        return ExitCode.OK
    old, new = diff["from"], diff["to"]
    console().print(
        f"{old['framework']}: run {old['id'][:12]} ({old['as_of']}) -> "
        f"run {new['id'][:12]} ({new['as_of']})",
        markup=False,
    )
    table(
        "Counts",
        ["status", "from", "to"],
        [(k, v["from"], v["to"]) for k, v in diff["counts"].items()],
    )
    table(
        f"Items that changed ({len(diff['items'])})",
        ["item", "from", "to"],
        [(i["id"], i["from"], i["to"]) for i in diff["items"]],
    )
    table(
        f"Controls that changed ({len(diff['controls'])})",
        ["control", "from", "to"],
        [(c["id"], c["from"], c["to"]) for c in diff["controls"]],
    )
    return ExitCode.OK
