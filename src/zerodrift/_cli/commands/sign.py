"""``zerodrift sign IMAGE``: countersign a verified image's attestations."""

from __future__ import annotations

import argparse
from typing import Any

from zerodrift._cli.commands.verify import split_reference, store_path
from zerodrift._cli.context import Context
from zerodrift._cli.options import add_command, add_format
from zerodrift._cli.output import console, emit_json
from zerodrift._cli.status import ExitCode

__all__ = ["register"]


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``sign``."""
    parser = add_command(
        subparsers,
        common,
        "sign",
        run,
        help="countersign an already-built image's attestations with the project key",
        description="Verify an image against every trusted key, then add a "
        "signature by the\nproject key (.zerodrift/keys/<name>.key) to each of its "
        "attestations.\nUse it to promote an image: a release key countersigns "
        "what CI built,\nand the trust policy lets only the release key sign for "
        "prod.",
        epilog="examples:\n  ZERODRIFT_KEY_PASSPHRASE=... zerodrift sign web\n"
        "  zerodrift --project . sign web@sha256:4f1c... --format json",
    )
    parser.add_argument(
        "image", metavar="IMAGE[@DIGEST]", help="image name (tag) or name@sha256:..."
    )
    add_format(parser)


def run(ctx: Context) -> int:
    """Verify, countersign, and record the signature in the audit trail."""
    from zerodrift.oci.layout import Layout
    from zerodrift.protect.attest import sign_image
    from zerodrift.protect.verify import git_commit_exists, verify_image

    name, ref = split_reference(ctx.args.image)
    layout = Layout.open(store_path(ctx))
    trusted = ctx.trusted_keys(None)
    report = verify_image(
        layout,
        ref,
        allowed_keys=trusted,
        known_keys=trusted,
        commit_exists=git_commit_exists(ctx.project.root),
    )
    signer = ctx.signer()
    stored = sign_image(layout, report.digest, signer)
    keyid = signer.public_key.keyid
    ctx.record(
        "image.signed",
        f"{name}@{report.digest}",
        {"keyid": keyid, "attestations": [d.digest for d in stored]},
    )
    if ctx.args.format == "json":
        emit_json(
            "signature",
            {
                "image": name,
                "digest": report.digest,
                "keyid": keyid,
                "attestations": [d.digest for d in stored],
            },
        )
    else:
        console().print(
            f"signed {len(stored)} attestation(s) of {name}@{report.digest} "
            f"with key {keyid[:12]}…"
        )
    return ExitCode.OK
