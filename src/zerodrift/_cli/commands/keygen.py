"""``zerodrift keygen``: create a signing key pair for the project."""

from __future__ import annotations

import argparse
import re
from typing import Any

from zerodrift._cli.context import Context
from zerodrift._cli.options import add_command, add_format
from zerodrift._cli.output import console, emit_json
from zerodrift._cli.status import ExitCode
from zerodrift.errors import ConfigError

__all__ = ["register"]


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``keygen``."""
    parser = add_command(
        subparsers,
        common,
        "keygen",
        run,
        help="create a signing key pair (private key encrypted at rest)",
        epilog="The private key goes to .zerodrift/keys/NAME.key (mode 0600, never "
        "committed);\nthe public key to keys/NAME.pub (commit it and list it under "
        "'trust.keys').\n"
        "The passphrase comes from ZERODRIFT_KEY_PASSPHRASE or a prompt.",
    )
    parser.add_argument(
        "--name",
        default=None,
        type=_key_name,
        help="key name: lower-case letters, digits and '-' (default: the project "
        "key name, 'project')",
    )
    parser.add_argument(
        "--algorithm",
        choices=["ecdsa-p256", "ed25519"],
        default="ecdsa-p256",
        help="signature algorithm",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace an existing key of the same name"
    )
    add_format(parser)


def _key_name(text: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,62}", text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a valid key name (lower-case letters, digits, '-')"
        )
    return text


def run(ctx: Context) -> int:
    """Generate and store the key pair, then record it in the audit trail."""
    from zerodrift.protect.keys import (
        generate_private_key,
        read_passphrase,
        write_keypair,
    )

    project = ctx.project
    name = ctx.args.name or project.key_name
    private_path = project.state_dir / "keys" / f"{name}.key"
    public_path = project.public_key_path(name)
    if private_path.exists() and not ctx.args.force:
        raise ConfigError(
            f"key {name!r} already exists at {private_path}",
            hint="pass --force to replace it, or choose --name",
            reference="key-exists",
        )
    passphrase = read_passphrase(confirm=True, purpose=f"the new key {name!r}")
    keyid = write_keypair(
        generate_private_key(ctx.args.algorithm), private_path, public_path, passphrase
    )
    ctx.record(
        "key.generated",
        name,
        {
            "keyid": keyid,
            "algorithm": ctx.args.algorithm,
            "public_key": str(public_path.relative_to(project.root)),
        },
    )
    result = {
        "name": name,
        "keyid": keyid,
        "algorithm": ctx.args.algorithm,
        "private_key": str(private_path),
        "public_key": str(public_path),
    }
    if ctx.args.format == "json":
        emit_json("key", result)
    else:
        console().print(
            f"key {name!r} ({ctx.args.algorithm}) id {keyid}\n"
            f"  private: {private_path} (encrypted)\n"
            f"  public:  {public_path}"
        )
    return ExitCode.OK
