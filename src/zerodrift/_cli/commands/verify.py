"""``zerodrift verify IMAGE[@DIGEST]``: check an image offline before trusting it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerodrift._cli.context import Context
from zerodrift._cli.options import add_command, add_env, add_format
from zerodrift._cli.output import console, emit_json, table
from zerodrift._cli.status import ExitCode

if TYPE_CHECKING:
    from zerodrift.oci.layout import Layout
    from zerodrift.protect.keys import PublicKey
    from zerodrift.protect.verify import ImageVerificationError, VerifyReport

__all__ = ["register", "split_reference"]


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``verify``."""
    parser = add_command(
        subparsers,
        common,
        "verify",
        run,
        help="verify an image's blobs, signatures, provenance and golden manifest",
        description="Verify an image in the project's store, offline, in five steps:\n"
        "  1 store            every blob of the image and its referrers matches "
        "its digest\n"
        "  2 signatures       provenance, SBOM and golden manifest attestations are "
        "signed\n"
        "                     by a key the trust policy allows (for --env, if given)\n"
        "  3 provenance       the spec commit it was built from is in this "
        "repository\n"
        "  4 golden manifest  recomputed from the layer tars, the Merkle root "
        "matches\n"
        "  5 sbom             a CycloneDX SBOM about this image is attested\n"
        "Verification stops at the first failure and says what failed.",
        epilog="examples:\n  zerodrift verify web\n  zerodrift verify --env prod"
        "            # every image of the spec\n"
        "  zerodrift verify web@sha256:4f1c... --env prod --format json\n"
        "exit codes: 0 verified, 1 verification failed, 3 bad input, 4 IO error.",
    )
    parser.add_argument(
        "image",
        metavar="IMAGE[@DIGEST]",
        nargs="?",
        help="image name (tag) or name@sha256:...; default: every image of the spec",
    )
    add_env(parser)
    add_format(parser)


def split_reference(text: str) -> tuple[str, str]:
    """Split ``name@sha256:...`` into ``(name, ref)``; ref is the digest or tag.

    ``sha256:...`` alone gives the digest as both name and reference.
    """
    name, at, digest = text.partition("@")
    if at:
        return name, digest
    return text, text


def run(ctx: Context) -> int:
    """Verify one image, or every image of the spec; record each outcome."""
    layout, policy = _prepare(ctx)
    if ctx.args.image is None:
        return _verify_all(ctx, layout, policy)
    report = _verify_one(ctx, layout, policy, ctx.args.image, render_failure=True)
    env = ctx.args.env
    if ctx.args.format == "json":
        emit_json("verification", {"environment": env, **report.to_dict()})
    else:
        out = console()
        for step in report.steps:
            out.print(f"[green]ok[/green]  {step.number} {step.name:<16} {step.detail}")
        name = split_reference(ctx.args.image)[0]
        where = f" for {env}" if env else ""
        out.print(f"verified {name}@{report.digest}{where}")
    return ExitCode.OK


@dataclass(frozen=True)
class _Policy:
    allowed: list[PublicKey]
    known: list[PublicKey]


def _prepare(ctx: Context) -> tuple[Layout, _Policy]:
    """Check the environment, the trust policy and the store before verifying.

    Raises:
        ConfigError: Unknown environment, no allowed key, or no store.
        IntegrityError: The store is not a complete OCI layout.
    """
    from zerodrift.errors import ConfigError
    from zerodrift.oci.layout import Layout

    env = ctx.args.env
    fleet = ctx.spec.fleet
    if env is not None and env not in fleet.environments:
        raise ConfigError(
            f"no environment {env!r} in the spec",
            hint="known: " + ", ".join(sorted(fleet.environments)),
            reference="environment-unknown",
        )
    allowed = ctx.trusted_keys(env)
    if not allowed:
        where = f"environment {env!r}" if env else "any environment"
        raise ConfigError(
            f"the trust policy allows no key for {where}",
            hint="list public keys under 'trust.keys' and name them under "
            f"'trust.environments.{env or '<env>'}'",
            reference="no-trusted-keys",
        )
    store = store_path(ctx)
    if not store.exists():
        raise ConfigError(
            f"no image store at {store}",
            hint="build the images first: zerodrift build",
            reference="store-missing",
        )
    return Layout.open(store), _Policy(allowed, ctx.trusted_keys(None))


def _verify_one(
    ctx: Context, layout: Layout, policy: _Policy, image: str, *, render_failure: bool
) -> VerifyReport:
    """Verify ``image`` and record the outcome in the audit trail.

    Raises:
        ImageVerificationError: A step failed (recorded, then re-raised).
        ConfigError: The image is not in the store.
    """
    from zerodrift.protect.verify import (
        ImageVerificationError,
        git_commit_exists,
        verify_image,
    )

    env = ctx.args.env
    name, ref = split_reference(image)
    try:
        report = verify_image(
            layout,
            ref,
            allowed_keys=policy.allowed,
            known_keys=policy.known,
            environment=env,
            commit_exists=git_commit_exists(ctx.project.root),
        )
    except ImageVerificationError as exc:
        ctx.record(
            "image.verify_failed",
            image,
            {"environment": env, "step": exc.step, "reference": exc.reference},
        )
        if render_failure:
            _render_failure(ctx.args.format, image, exc)
        raise
    ctx.record(
        "image.verified",
        f"{name}@{report.digest}",
        {"environment": env, "commit": report.commit, "signers": report.signers},
    )
    return report


def _verify_all(ctx: Context, layout: Layout, policy: _Policy) -> int:
    """Verify the tagged image of every recipe; exit 1 if any is not verified."""
    from zerodrift.errors import ConfigError, VerificationError

    rows: list[dict[str, Any]] = []
    for name in sorted(ctx.spec.fleet.images):
        try:
            report = _verify_one(ctx, layout, policy, name, render_failure=False)
            rows.append({"image": name, "digest": report.digest, "verified": True})
        except (VerificationError, ConfigError) as exc:
            step = getattr(exc, "step", None)
            rows.append(
                {
                    "image": name,
                    "digest": None,
                    "verified": False,
                    "failed_step": step,
                    "error": exc.to_dict(),
                }
            )
    failed = [row for row in rows if not row["verified"]]
    if ctx.args.format == "json":
        emit_json(
            "verifications",
            {"environment": ctx.args.env, "verified": not failed, "images": rows},
        )
    else:
        table(
            f"Verification{' for ' + ctx.args.env if ctx.args.env else ''}",
            ["image", "result", "digest / problem"],
            [
                (
                    row["image"],
                    "verified" if row["verified"] else "FAILED",
                    row["digest"]
                    if row["verified"]
                    else f"{row['error']['reference']}: {row['error']['message']}",
                )
                for row in rows
            ],
        )
    return ExitCode.FINDINGS if failed else ExitCode.OK


def store_path(ctx: Context) -> Path:
    """The project's OCI image layout (the artifact store)."""
    return ctx.project.store_dir


def _render_failure(fmt: str, subject: str, exc: ImageVerificationError) -> None:
    if fmt == "json":
        emit_json(
            "verification",
            {
                "image": subject,
                "verified": False,
                "failed_step": exc.step,
                "error": exc.to_dict(),
                "steps": [
                    {"step": s.number, "name": s.name, "ok": True, "detail": s.detail}
                    for s in exc.passed
                ],
            },
        )
        return
    from zerodrift.protect.verify import STEP_NAMES

    out = console()
    for step in exc.passed:
        out.print(f"[green]ok[/green]  {step.number} {step.name:<16} {step.detail}")
    out.print(f"[red]FAIL[/red] {exc.step} {STEP_NAMES[exc.step]}")
