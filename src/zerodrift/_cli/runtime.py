"""Building a reconcile session from the command line's context."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from zerodrift._cli.context import Context
from zerodrift.errors import ConfigError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

    from zerodrift.reconcile.session import Session
    from zerodrift.runtime.images import ImageVerifier
    from zerodrift.spec import LoadedSpec

__all__ = [
    "load_private_key",
    "open_session",
    "progress_for",
    "progress_line",
]


def open_session(ctx: Context, spec: LoadedSpec | None = None) -> Session:
    """A reconcile session for ``--env`` over the project's store and database.

    Raises:
        ConfigError: ``--env`` is missing or unknown.
    """
    from zerodrift.reconcile.session import Session, installed_verifier
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
        return load_private_key(project.private_key_path, project.key_name)

    return Session(
        verifier=installed_verifier() or _verifier(ctx),
        fleet=loaded.fleet,
        spec_digest=loaded.digest,
        environment=environment,
        source=OciLayoutSource(project.store_dir),
        db=ctx.db,
        state_dir=project.state_dir,
        secrets=SecretResolver(project.root, dict(project.environ), private_key),
        record=ctx.record,
        git_commit=ctx.git.commit,
        environ=dict(project.environ),
    )


def _verifier(ctx: Context) -> ImageVerifier:
    """Images run only after verification against the spec's trust policy."""
    from zerodrift.oci.layout import Layout
    from zerodrift.protect.verify import TrustPolicyVerifier, git_commit_exists
    from zerodrift.runtime.images import RefuseUnverified

    store = ctx.project.store_dir
    if not store.exists():
        return RefuseUnverified()
    return TrustPolicyVerifier(
        layout=Layout.open(store),
        keys_for=ctx.trusted_keys,
        known_keys=ctx.trusted_keys(),
        commit_exists=git_commit_exists(ctx.project.root),
    )


def progress_for(ctx: Context) -> Callable[[str], None]:
    """Progress lines on stderr, or nothing with ``-q``."""
    if getattr(ctx.args, "quiet", 0) > 0:
        return lambda _line: None
    return progress_line


def progress_line(line: str) -> None:
    """Print one progress line on stderr."""
    sys.stderr.write(f"  {line}\n")
    sys.stderr.flush()


def load_private_key(path: Path, name: str) -> ec.EllipticCurvePrivateKey:
    """Decrypt the project's ECDSA P-256 key, for opening sealed secrets.

    Raises:
        ConfigError: The key is missing, the passphrase is wrong, or the key
            is not an ECDSA P-256 key.
    """
    from cryptography.hazmat.primitives.asymmetric import ec

    from zerodrift.protect.keys import load_private_key as decrypt
    from zerodrift.protect.keys import read_passphrase

    key = decrypt(path, read_passphrase(purpose=f"key {name!r}"))
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(
            f"{path} is not an ECDSA P-256 key; sealed secrets need one",
            reference="seal-key-unsupported",
        )
    return key
