"""``zerodrift push`` and ``zerodrift pull``: images and referrers, via a registry."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerodrift._cli.commands.verify import split_reference, store_path
from zerodrift._cli.context import Context
from zerodrift._cli.options import add_command, add_format
from zerodrift._cli.output import console, emit_json
from zerodrift._cli.status import ExitCode

if TYPE_CHECKING:
    from zerodrift.oci.registry import RegistryClient, RegistryRef

__all__ = ["PASSWORD_ENV", "register"]

PASSWORD_ENV = "ZERODRIFT_REGISTRY_PASSWORD"  # noqa: S105 - a variable name

_CONNECTION_HELP = (
    "authentication: --username NAME with the password in "
    f"{PASSWORD_ENV}.\nTLS: the system trust store, or --ca-file; loopback "
    "registries use plain HTTP\n(force it elsewhere with --plain-http)."
)


def _connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--username", help="registry user for HTTP basic auth")
    parser.add_argument(
        "--ca-file", type=Path, metavar="PEM", help="CA bundle to trust for TLS"
    )
    parser.add_argument(
        "--plain-http",
        action="store_true",
        default=None,
        help="use HTTP, not HTTPS (unsafe; the default for loopback addresses)",
    )
    add_format(parser)


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``push`` and ``pull``."""
    push = add_command(
        subparsers,
        common,
        "push",
        run_push,
        help="push an image with its attestations to an OCI registry",
        description="Push an image from the store, with every referrer (signed "
        "attestations,\ngolden manifest), to an OCI registry. Manifests are sent "
        "byte for byte,\nso every digest stays the same.",
        epilog="examples:\n"
        "  zerodrift push web --to registry://127.0.0.1:5000/shop/web\n"
        "  zerodrift push web@sha256:4f1c... --to registry://reg.example/shop/web:v3\n"
        + _CONNECTION_HELP,
    )
    push.add_argument("image", metavar="IMAGE[@DIGEST]", help="image in the store")
    push.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="registry://host[:port]/repository[:tag] (tag defaults to the image name)",
    )
    _connection_options(push)

    pull = add_command(
        subparsers,
        common,
        "pull",
        run_pull,
        help="pull an image with its attestations from an OCI registry",
        description="Pull an image and every referrer into the store, checking "
        "each digest.\nRun 'zerodrift verify' on it before use.",
        epilog="examples:\n"
        "  zerodrift pull registry://127.0.0.1:5000/shop/web@sha256:4f1c...\n"
        "  zerodrift pull registry://reg.example/shop/web:v3 --as web\n"
        + _CONNECTION_HELP,
    )
    pull.add_argument(
        "source",
        metavar="URL",
        help="registry://host[:port]/repository@sha256:<digest> (or :tag)",
    )
    pull.add_argument(
        "--as",
        dest="name",
        metavar="NAME",
        help="tag in the store (default: the repository's last path segment)",
    )
    _connection_options(pull)


def _client(ctx: Context, ref: RegistryRef) -> RegistryClient:
    from zerodrift.oci.registry import RegistryClient

    return RegistryClient(
        ref,
        username=ctx.args.username,
        password=os.environ.get(PASSWORD_ENV),
        ca_file=ctx.args.ca_file,
        plain_http=ctx.args.plain_http,
    )


def _progress(ctx: Context) -> Callable[[str], None] | None:
    """Progress lines on stderr, unless ``--quiet``."""
    if getattr(ctx.args, "quiet", 0):
        return None

    def show(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    return show


def run_push(ctx: Context) -> int:
    """Push the image and its referrers; record the push."""
    from zerodrift.errors import ConfigError
    from zerodrift.oci.layout import Layout
    from zerodrift.oci.registry import parse_registry_url, push_image

    target = parse_registry_url(ctx.args.to)
    if target.digest:
        raise ConfigError(
            "a push target names a repository and tag, not a digest",
            hint="drop the @sha256:... part",
            reference="registry-url-invalid",
        )
    name, ref = split_reference(ctx.args.image)
    tag = target.tag or (None if name.startswith("sha256:") else name)
    layout = Layout.open(store_path(ctx))
    report = push_image(
        layout, ref, _client(ctx, target), tag=tag, progress=_progress(ctx)
    )
    where = f"{target.address}/{target.repository}"
    ctx.record(
        "image.pushed",
        f"{name}@{report.digest}",
        {"to": f"registry://{where}", "tag": tag, **report.to_dict()},
    )
    if ctx.args.format == "json":
        emit_json("push", {"to": f"registry://{where}", "tag": tag, **report.to_dict()})
    else:
        console().print(
            f"pushed {name}@{report.digest} to registry://{where}"
            f"{':' + tag if tag else ''} with {len(report.referrers)} referrers "
            f"({report.blobs_sent} blobs sent, {report.blobs_skipped} already there)"
        )
    return ExitCode.OK


def run_pull(ctx: Context) -> int:
    """Pull the image and its referrers into the store; record the pull."""
    from zerodrift.errors import ConfigError
    from zerodrift.oci.layout import Layout
    from zerodrift.oci.registry import parse_registry_url, pull_image

    source = parse_registry_url(ctx.args.source)
    reference = source.digest or source.tag
    if reference is None:
        raise ConfigError(
            f"{ctx.args.source} names no tag or digest",
            hint="append @sha256:<digest> (preferred) or :tag",
            reference="registry-url-invalid",
        )
    name = ctx.args.name or source.repository.rsplit("/", 1)[-1]
    layout = Layout.open_or_create(store_path(ctx))
    report = pull_image(
        _client(ctx, source), reference, layout, tag=name, progress=_progress(ctx)
    )
    ctx.record(
        "image.pulled",
        f"{name}@{report.digest}",
        {"from": str(source), **report.to_dict()},
    )
    if ctx.args.format == "json":
        emit_json("pull", {"from": str(source), "name": name, **report.to_dict()})
    else:
        console().print(
            f"pulled {name}@{report.digest} with {len(report.referrers)} referrers "
            f"({report.blobs_sent} blobs received); verify it: zerodrift verify {name}"
        )
    return ExitCode.OK
