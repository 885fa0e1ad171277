"""``zerodrift fim init|check|update|watch``: host file integrity monitoring."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerodrift._cli.context import Context
from zerodrift._cli.options import add_command, add_format
from zerodrift._cli.output import emit_json, emit_jsonl, err_console, table
from zerodrift._cli.status import ExitCode
from zerodrift.errors import (
    ConfigError,
    IntegrityError,
    Location,
    OperationalError,
    VerificationError,
)

if TYPE_CHECKING:
    from zerodrift.detect.fim import CheckReport, RuleSet, VerifiedBaseline
    from zerodrift.detect.fim.scanner import Entry

__all__ = ["register"]

_BASELINE = Path(".zerodrift") / "fim" / "baseline.fim"


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``fim`` and its sub-commands."""
    parser = add_command(
        subparsers,
        common,
        "fim",
        None,
        help="file integrity monitoring of this host against a signed baseline",
        description="File integrity monitoring: record a signed baseline of the "
        "files the rules name, then report every added, removed and changed "
        "entry. The baseline's signature is verified before every use.",
    )
    sub = parser.add_subparsers(title="fim commands", metavar="ACTION", required=True)
    _register_init(sub, common)
    _register_check(sub, common)
    _register_update(sub, common)
    _register_watch(sub, common)


def _baseline_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="FILE",
        help=f"baseline file (default: {_BASELINE} in the project)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="hashing worker processes (default: one per core)",
    )


def _register_init(sub: Any, common: argparse.ArgumentParser) -> None:
    init = add_command(
        sub,
        common,
        "init",
        run_init,
        help="record and sign a new baseline",
        epilog="examples:\n"
        "  zerodrift fim init                       the shipped Debian rules\n"
        "  zerodrift fim init /srv/app /etc/nginx   every attribute of these\n"
        "  zerodrift fim init --rules fim.yaml\n"
        "  zerodrift fim init --from-manifest golden.json --root /\n"
        "The baseline is signed with the project key (ZERODRIFT_KEY_PASSPHRASE).",
    )
    init.add_argument("paths", nargs="*", metavar="PATH", help="paths to watch")
    init.add_argument("--rules", type=Path, metavar="FILE", help="rules file (YAML)")
    init.add_argument(
        "--from-manifest",
        type=Path,
        metavar="FILE",
        help="build the baseline from an image's golden manifest (JSON or a "
        "signed DSSE envelope) instead of scanning: no trust on first scan",
    )
    init.add_argument(
        "--root",
        type=Path,
        default=Path("/"),
        metavar="DIR",
        help="where the manifest's image root is on this host (default: /)",
    )
    init.add_argument(
        "--algorithm",
        choices=["sha256", "sha512", "blake3"],
        help="content hash (overrides the rules file)",
    )
    _baseline_option(init)
    add_format(init)


def _register_check(sub: Any, common: argparse.ArgumentParser) -> None:
    check = add_command(
        sub,
        common,
        "check",
        run_check,
        help="verify the baseline's signature, then compare the host with it",
        epilog="modes: the default fast mode rehashes files whose inode, size, "
        "mtime or ctime moved,\nplus a rotating sample so every file is verified "
        "within the rules' sample_period;\n--full rehashes everything.\n"
        "exit codes: 0 no change, 1 changes found or the baseline is refused.\n"
        "examples:\n  zerodrift fim check\n  zerodrift fim check --full "
        "--format ocsf >> /var/log/fim.jsonl",
    )
    check.add_argument("--full", action="store_true", help="rehash every file")
    check.add_argument(
        "--no-record",
        action="store_true",
        help="do not store findings in the state database",
    )
    _baseline_option(check)
    add_format(check, "ocsf")


def _register_update(sub: Any, common: argparse.ArgumentParser) -> None:
    update = add_command(
        sub,
        common,
        "update",
        run_update,
        help="accept reviewed changes into the baseline and re-sign it",
        epilog="Only what is named is accepted: PATHs (a folder with everything "
        "under it), or\nevery change listed in a report of 'fim check --format "
        "json'. A path whose\nstate moved on since the report is refused. Who "
        "accepted what goes to the audit trail.\n"
        "examples:\n  zerodrift fim update /etc/nginx/nginx.conf\n"
        "  zerodrift fim check --format json > r.json; zerodrift fim update "
        "--from-report r.json",
    )
    update.add_argument("paths", nargs="*", metavar="PATH", help="paths to accept")
    update.add_argument(
        "--from-report",
        type=Path,
        metavar="FILE",
        help="accept every change listed in this JSON report",
    )
    _baseline_option(update)
    add_format(update)


def _register_watch(sub: Any, common: argparse.ArgumentParser) -> None:
    watch = add_command(
        sub,
        common,
        "watch",
        run_watch,
        help="report changes as they happen (fanotify or inotify), with a "
        "scheduled full check",
        epilog="Events are compared with the baseline within a second; a full "
        "check runs every\n--interval seconds because events can be missed. "
        "Stops on SIGTERM or Ctrl-C.",
    )
    watch.add_argument(
        "--interval",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="seconds between scheduled full checks (default: 3600)",
    )
    watch.add_argument(
        "--backend",
        choices=["auto", "fanotify", "inotify"],
        default="auto",
        help="kernel event source (default: fanotify when permitted)",
    )
    _baseline_option(watch)
    add_format(watch, "ocsf")


def _baseline_path(ctx: Context) -> Path:
    given: Path | None = ctx.args.baseline
    return given.absolute() if given else ctx.project.root / _BASELINE


def _rules(ctx: Context) -> RuleSet:
    import dataclasses

    from zerodrift.detect.fim.rules import (
        default_rules,
        load_rules,
        rules_for_paths,
    )

    args = ctx.args
    base = load_rules(args.rules) if args.rules else None
    if args.paths:
        rules = rules_for_paths(args.paths, base)
    elif base is not None:
        rules = base
    else:
        rules = default_rules()
    if args.algorithm:
        rules = dataclasses.replace(rules, algorithm=args.algorithm)
    return rules


def run_init(ctx: Context) -> int:
    """Record, sign and register a new baseline."""
    from zerodrift.detect.fim import create_baseline, record_baseline
    from zerodrift.detect.fim.golden import create_from_manifest

    path = _baseline_path(ctx)
    rules = _rules(ctx)
    signer = ctx.signer()
    note = err_console()
    if ctx.args.from_manifest:
        statement = create_from_manifest(
            path,
            ctx.args.from_manifest,
            signer,
            keys=ctx.trusted_keys(whole_spec=False),
            root=ctx.args.root,
            rules=rules if (ctx.args.rules or ctx.args.paths) else None,
        )
        skipped: list[tuple[str, str]] = []
    else:
        note.print(f"fim: scanning {len(rules.roots)} root(s) …")
        statement, stats = create_baseline(
            path,
            rules,
            signer,
            workers=ctx.args.workers,
            progress=_progress(note) if sys.stderr.isatty() else None,
        )
        skipped = stats.skipped
    digest = record_baseline(ctx.db, path, statement)
    ctx.record(
        "fim.init",
        str(path),
        {
            "digest": digest,
            "entries": statement["entries"],
            "algorithm": statement["algorithm"],
            "source": statement["source"],
            "roots": [r["path"] for r in statement["rules"]["paths"]],
        },
    )
    summary = {
        "baseline": str(path),
        "digest": digest,
        "entries": statement["entries"],
        "algorithm": statement["algorithm"],
        "source": statement["source"],
        "skipped": [{"path": p, "reason": r} for p, r in skipped],
    }
    if ctx.args.format == "json":
        emit_json("fim-baseline", summary)
    else:
        for skipped_path, reason in skipped:
            note.print(f"  not descended: {skipped_path} ({reason})")
        note.print(
            f"fim: baseline of {statement['entries']} entries signed "
            f"({statement['algorithm']}) -> {path}"
        )
    return ExitCode.OK


def _progress(note: Any) -> Any:
    def show(count: int) -> None:
        note.print(f"  {count:,} entries …")

    return show


def _open_signed(ctx: Context) -> VerifiedBaseline:
    """Open the baseline and verify its signature (not yet its record).

    Raises:
        IntegrityError: The file is gone, but this project recorded one
            there (a missing baseline is only harmless before ``fim init``).
    """
    from zerodrift.detect.fim import open_baseline
    from zerodrift.detect.fim.monitor import last_recorded

    path = _baseline_path(ctx)
    # Only the spec's trust keys matter here (ADR 0044).
    keys = ctx.trusted_keys(whole_spec=False)
    try:
        return open_baseline(path, keys)
    except OperationalError as exc:
        if exc.reference != "fim-baseline-missing":
            raise
        recorded = last_recorded(ctx.db, path)
        if recorded is None:
            raise
        raise IntegrityError(
            f"baseline {path} is gone, but this project recorded it "
            f"({recorded[0][:19]}… on {recorded[1]})",
            hint="treat the host as compromised; restore the baseline from a "
            "trusted copy, then check",
            reference="fim-baseline-removed",
        ) from exc


def _open_verified(ctx: Context) -> VerifiedBaseline:
    from zerodrift.detect.fim import verify_current

    baseline = _open_signed(ctx)
    verify_current(ctx.db, baseline)
    return baseline


def run_check(ctx: Context) -> int:
    """Verify the baseline, compare, report, and record findings."""
    from zerodrift.detect.fim import run_check as check
    from zerodrift.detect.fim import to_findings
    from zerodrift.detect.fim.monitor import machine_name
    from zerodrift.detect.findings import record_findings, resolve_unseen

    # The baseline's signature first; whether it is the one recorded last is
    # checked by the comparison, which opens the database meanwhile.
    baseline = _open_signed(ctx)
    report = check(
        lambda: ctx.db,
        baseline,
        full=ctx.args.full,
        workers=ctx.args.workers,
        verify=True,
    )
    host = machine_name()
    findings = to_findings(report, host)
    if not ctx.args.no_record:
        findings = record_findings(ctx.db, findings).findings
        # Every path of the baseline was looked at: what is no longer
        # reported matches the signed baseline again.
        resolved = resolve_unseen(
            ctx.db,
            source="fim",
            environment=None,
            covers=lambda _kind, subject: subject.startswith(f"{host}:"),
            seen=(f.fingerprint for f in findings),
            resolution="matches the signed baseline again",
        )
        ctx.record(
            "fim.check",
            str(baseline.path),
            {
                "mode": report.mode,
                "baseline": report.baseline,
                **report.counts(),
                "resolved_findings": resolved[:100],
            },
        )
    _render(ctx.args.format, report, findings)
    return ExitCode.FINDINGS if report.changes else ExitCode.OK


def _render(fmt: str, report: CheckReport, findings: list[Any]) -> None:
    from zerodrift.detect.findings import to_ocsf

    if fmt == "json":
        emit_json("fim-report", report.to_dict())
        return
    if fmt == "ocsf":
        emit_jsonl(_ocsf(to_ocsf(f, resource_type="file")) for f in findings)
        return
    counts = report.counts()
    summary = (
        f"mode {report.mode}: {report.stats.scanned} entries, "
        f"{report.stats.hashed} hashed ({report.stats.sampled} sampled) in "
        f"{report.seconds:.2f} s; added {counts['added']}, removed "
        f"{counts['removed']}, changed {counts['changed']}, unverifiable "
        f"{counts['unverifiable']}"
    )
    if not report.changes:
        # Plain text: the common answer should not wait for rich to load.
        sys.stdout.write(f"FIM {report.mode} check: no changes\n")
        sys.stderr.write(summary + "\n")
        return
    table(
        f"FIM {report.mode} check: {len(report.changes)} change(s)",
        ["kind", "severity", "path", "what (baseline→now)"],
        _rows(report),
    )
    err_console().print(summary)


def _ocsf(event: dict[str, Any]) -> dict[str, Any]:
    from zerodrift.detect.fim.monitor import CSF, CSF_1_1

    labels = event["metadata"]["labels"]
    labels.extend(f"CSF1.1:{s}" for c in CSF for s in CSF_1_1[c])
    return event


def _rows(report: CheckReport) -> list[tuple[Any, ...]]:
    return [
        (c.kind, c.severity.label, c.display, c.reason or _what(c.to_dict()))
        for c in report.changes
    ]


def _what(change: dict[str, Any]) -> str:
    parts = []
    for name, values in change["attributes"].items():
        old, new = values["old"], values["new"]
        if change["kind"] != "changed":
            if name in ("type", "mode", "size", "target"):
                parts.append(f"{name} {new if new is not None else old}")
            continue
        if name in ("mtime", "ctime", "xattrs"):
            parts.append(name)
            continue
        if name == "hash":
            old, new = str(old)[:12] + "…", str(new)[:12] + "…"
        parts.append(f"{name} {old}→{new}")
    return ", ".join(parts)


def run_update(ctx: Context) -> int:
    """Accept named changes, re-sign, and record who accepted what."""
    from zerodrift.detect.fim import accept_changes, record_baseline
    from zerodrift.detect.fim.monitor import machine_name
    from zerodrift.detect.findings import resolve_unseen

    args = ctx.args
    if not args.paths and not args.from_report:
        raise ConfigError(
            "nothing to accept",
            hint="name PATHs, or pass --from-report FILE",
            reference="fim-update-empty",
        )
    baseline = _open_verified(ctx)
    accepted = [os.fsencode(str(Path(p).absolute())) for p in args.paths]
    expect = None
    if args.from_report:
        report = _read_report(args.from_report, baseline.digest)
        accepted += [os.fsencode(c["path"]) for c in report["changes"]]
        expect = _expectation(report, args.from_report)
    signer = ctx.signer()
    statement, names = accept_changes(baseline, accepted, signer, expect=expect)
    digest = record_baseline(ctx.db, baseline.path, statement)
    subjects = {f"{machine_name()}:{name}" for name in names}
    resolved = resolve_unseen(
        ctx.db,
        source="fim",
        environment=None,
        covers=lambda _kind, subject: subject in subjects,
        seen=(),
        resolution=f"accepted into the baseline by {ctx.audit.actor}",
    )
    ctx.record(
        "fim.update",
        str(baseline.path),
        {
            "resolved_findings": resolved[:100],
            "accepted": names,
            "previous": baseline.digest,
            "digest": digest,
            "report": str(args.from_report) if args.from_report else None,
        },
    )
    if args.format == "json":
        emit_json(
            "fim-update",
            {"baseline": str(baseline.path), "digest": digest, "accepted": names},
        )
    else:
        err_console().print(
            f"fim: accepted {len(names)} path(s); baseline re-signed "
            f"({statement['entries']} entries)"
        )
    return ExitCode.OK


def _read_report(path: Path, digest: str) -> dict[str, Any]:
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        changes = report["changes"]
        made_for = report["baseline"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"cannot read report {path}: {exc}",
            hint="pass the output of 'zerodrift fim check --format json'",
            location=Location(str(path)),
            reference="fim-report-invalid",
        ) from exc
    if made_for != digest:
        raise ConfigError(
            f"report {path} was made against another baseline",
            hint="run 'fim check --format json' again and review the new report",
            location=Location(str(path), field="baseline"),
            reference="fim-report-stale",
        )
    return dict(report) if isinstance(changes, list) else {"changes": []}


def _expectation(report: dict[str, Any], path: Path) -> Any:
    from zerodrift.detect.fim.compare import render_value

    wanted = {c["path"]: c for c in report["changes"]}

    def expect(entry: Entry) -> None:
        change = wanted.get(os.fsdecode(entry.path))
        if change is None:
            return
        gone = entry.type == "absent"
        if change["kind"] == "removed" and not gone:
            raise _moved_on(entry.display, path, "it exists again")
        for name, values in change["attributes"].items():
            now = None if gone else render_value(name, getattr(entry, name))
            if name != "type" and now != values["new"]:
                raise _moved_on(entry.display, path, f"its {name} changed again")

    return expect


def _moved_on(name: str, report: Path, why: str) -> VerificationError:
    return VerificationError(
        f"{name} is not as reviewed in {report}: {why}",
        hint="run 'fim check --format json' again and review the new report",
        reference="fim-update-moved-on",
    )


def publish_changes(
    ctx: Context, baseline: VerifiedBaseline, changes: list[Any], mode: str
) -> None:
    """Print changes found by ``watch`` as they come, and record them."""
    from zerodrift.detect.fim.monitor import findings_for, machine_name
    from zerodrift.detect.findings import record_findings, to_ocsf

    findings = findings_for(changes, machine_name(), mode, baseline.digest)
    findings = record_findings(ctx.db, findings).findings
    ctx.record(
        "fim.watch.change",
        str(baseline.path),
        {"mode": mode, "paths": [c.display for c in changes]},
    )
    fmt = ctx.args.format
    if fmt == "ocsf":
        emit_jsonl(_ocsf(to_ocsf(f, resource_type="file")) for f in findings)
    elif fmt == "json":
        emit_jsonl(c.to_dict() for c in changes)
    else:
        for change in changes:
            what = change.reason or _what(change.to_dict())
            sys.stdout.write(
                f"{change.kind} {change.severity.label} {change.display}: {what}\n"
            )
    sys.stdout.flush()


def run_watch(ctx: Context) -> int:
    """Watch kernel file events and run scheduled full checks."""
    from zerodrift.detect.fim.watch import Watcher

    baseline = _open_verified(ctx)
    watcher = Watcher(
        ctx,
        baseline,
        ctx.args.backend,
        ctx.args.interval,
        reload=lambda: _open_verified(ctx),
    )
    return watcher.run()
