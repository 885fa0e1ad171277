"""``zerodrift watch``: detect drift continuously, within a second."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

from zerodrift._cli.context import Context
from zerodrift._cli.options import add_command, add_env, add_format
from zerodrift._cli.status import ExitCode

__all__ = ["register"]


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``watch``."""
    parser = add_command(
        subparsers,
        common,
        "watch",
        run,
        help="watch nodes continuously: podman events and file events trigger checks",
        epilog="examples:\n  zerodrift watch --env prod --respond\n"
        "  zerodrift watch --env prod --format ocsf >> findings.jsonl\n"
        "  zerodrift watch --env prod --interval 60 --image-interval 900\n"
        "Runs the checks of 'zerodrift check' at start, every --interval\n"
        "seconds, and at once when podman reports an exec session or a node\n"
        "dying, or the kernel reports a file event in a node's writable paths.\n"
        "The content of every image in use is verified in full against its\n"
        "signed golden manifest at start and every --image-interval seconds.\n"
        "Each finding is printed once per run (JSON lines with --format json\n"
        "or ocsf), stored and audited. SIGTERM or Ctrl-C stops it (exit 0).",
    )
    add_env(parser, required=True)
    add_format(parser, "ocsf")
    parser.add_argument(
        "--interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="seconds between scheduled full checks (default: 60)",
    )
    parser.add_argument(
        "--image-interval",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="seconds between full verifications of image content on disk "
        "(default: 3600, or the spec's compliance.integrity_check_interval if "
        "shorter; 0 turns them off)",
    )
    parser.add_argument(
        "--respond",
        action="store_true",
        help="apply each service's response policy to what is found",
    )


def run(ctx: Context) -> int:
    """Watch one environment until stopped."""
    from zerodrift._cli.commands.check import (
        _record,
        _respond,
        ocsf_finding,
        record_finished,
    )
    from zerodrift._cli.output import console
    from zerodrift._cli.runtime import open_session, progress_for
    from zerodrift.detect.findings import ocsf_file_activities
    from zerodrift.detect.watch import watch
    from zerodrift.respond.incidents import quarantined_nodes

    environment = ctx.args.env
    session = open_session(ctx)
    progress = progress_for(ctx)

    def report(fresh: list[Any], result: Any) -> None:
        scoped = type(result)(
            result.environment,
            result.nodes,
            fresh,
            result.seconds,
            result.truncated,
            result.content,
        )
        scoped = _record(ctx, environment, scoped)
        fresh = scoped.findings
        for finding in fresh:
            if ctx.args.format == "ocsf":
                line = "\n".join(
                    json.dumps(event, sort_keys=True)
                    for event in (
                        ocsf_finding(finding),
                        *ocsf_file_activities(finding),
                    )
                )
            elif ctx.args.format == "json":
                line = json.dumps(finding.to_dict(), sort_keys=True)
            else:
                console().print(
                    f"{finding.found_at} {finding.severity.label:8} "
                    f"{finding.subject} {finding.kind}: {finding.summary}"
                )
                continue
            sys.stdout.write(line + "\n")
        sys.stdout.flush()
        if ctx.args.respond:
            _respond(ctx, session, scoped)

    last_recorded = [-math.inf]

    def quiet(result: Any) -> None:
        # Checks that found nothing new leave one audit record per interval
        # (and each image-content check one): the evidence that monitoring
        # ran, without a record per file event.
        now = time.monotonic()
        if result.content is not None or now - last_recorded[0] >= ctx.args.interval:
            last_recorded[0] = now
            record_finished(ctx, environment, result)

    content_interval = image_interval(ctx)
    verified = (
        f", image content every {content_interval:g} s"
        if content_interval
        else ", image content not verified"
    )
    progress(
        f"watching {environment} (full check every {ctx.args.interval:g} s{verified})"
    )
    try:
        stats = watch(
            session,
            interval=ctx.args.interval,
            content_interval=content_interval or None,
            report=report,
            skip=lambda: quarantined_nodes(ctx.db, environment),
            checked=quiet,
        )
    finally:
        session.close()
    progress(
        f"stopped: {stats.checks} check(s) ({stats.content_checks} with image "
        f"content), {stats.events} runtime event(s), "
        f"{stats.reported} finding(s) reported"
    )
    return ExitCode.OK


DEFAULT_IMAGE_INTERVAL = 3600.0
"""Seconds between full image-content verifications unless told otherwise."""


def image_interval(ctx: Context) -> float:
    """``--image-interval``, or the default bounded by the compliance policy."""
    if ctx.args.image_interval is not None:
        return float(ctx.args.image_interval)
    policy = ctx.spec.fleet.compliance.integrity_check_interval
    return min(DEFAULT_IMAGE_INTERVAL, float(policy))


def _seconds(text: str) -> float:
    """A number of seconds, 0 or more (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds (0 turns it off)"
        )
    return value
