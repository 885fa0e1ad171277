"""Building a reconcile session from the command line's context."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from zerodrift._cli.context import Context
from zerodrift.errors import ConfigError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

    from zerodrift.reconcile.session import Session
    from zerodrift.spec import LoadedSpec

__all__ = ["STORE_DIR", "open_session", "progress_line"]

STORE_DIR = "store"


def open_session(ctx: Context, spec: LoadedSpec | None = None) -> Session:
    """A reconcile session for ``--env`` over the project's store and database.

    Raises:
        ConfigError: ``--env`` is missing or unknown.
    """
    from zerodrift.reconcile.session import Session
    from zerodrift.runtime.images import OciLayoutSource
    from zerodrift.runtime.secrets import SecretResolver

    loaded = spec or ctx.spec
    environment = ctx.args.env
    if environment not in loaded.fleet.environments:
        raise ConfigError(
            f"unknown environment {environment!r}",
            hint="declared: " + ", ".join(sorted(loaded.fleet.environments)),
            reference="unknown-environment",
        )
    project = ctx.project

    def private_key() -> ec.EllipticCurvePrivateKey:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        from zerodrift.protect.keys import read_passphrase

        passphrase = read_passphrase(purpose=f"key {project.key_name!r}")
        pem = project.private_key_path.read_bytes()
        key = serialization.load_pem_private_key(pem, password=passphrase)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the project key is not an ECDSA P-256 key")
        return key

    return Session(
        fleet=loaded.fleet,
        spec_digest=loaded.digest,
        environment=environment,
        source=OciLayoutSource(project.state_dir / STORE_DIR),
        db=ctx.db,
        state_dir=project.state_dir,
        secrets=SecretResolver(project.root, dict(project.environ), private_key),
        record=ctx.record,
        git_commit=ctx.git.commit,
        environ=dict(project.environ),
    )


def progress_line(line: str) -> None:
    """Print one progress line on stderr."""
    sys.stderr.write(f"  {line}\n")
    sys.stderr.flush()
