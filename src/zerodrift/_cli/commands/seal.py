"""``zerodrift seal``: encrypt a secret to the project key for ``sealed:`` sources."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from zerodrift._cli.context import Context
from zerodrift._cli.options import add_command
from zerodrift._cli.status import ExitCode
from zerodrift._internal.atomic import write_atomic
from zerodrift.errors import ConfigError

__all__ = ["register"]


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``seal``."""
    parser = add_command(
        subparsers,
        common,
        "seal",
        run,
        help="encrypt a secret value (read from stdin) to the project's public key",
        epilog="example:\n"
        '  printf %s "$TOKEN" | zerodrift seal secrets/api-token.sealed\n'
        "then in fleet.yaml:  secrets: [{name: api-token, "
        "source: sealed:secrets/api-token.sealed}]\n"
        "The sealed file may be committed; only the project's private key opens it.",
    )
    parser.add_argument(
        "output", type=Path, help="file to write (relative to the project)"
    )


def run(ctx: Context) -> int:
    """Seal stdin to the project's public key."""
    from zerodrift.runtime.secrets import seal

    value = sys.stdin.buffer.read()
    if not value:
        raise ConfigError(
            "no secret value on stdin",
            hint='pipe the value in: printf %s "$VALUE" | zerodrift seal FILE',
            reference="secret-empty",
        )
    project = ctx.project
    public_path = project.public_key_path()
    try:
        public_pem = public_path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the project's public key {public_path}: {exc.strerror}",
            hint="create a key with 'zerodrift keygen'",
            reference="key-missing",
        ) from exc
    target = project.resolve(str(ctx.args.output))
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, seal(public_pem, value), mode=0o644)
    ctx.record("secret.sealed", str(ctx.args.output), {"key": project.key_name})
    sys.stderr.write(f"sealed {len(value)} bytes to {target}\n")
    return ExitCode.OK
