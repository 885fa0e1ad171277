"""``zerodrift build [IMAGE...]``: reproducible images into the project's store."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerodrift._cli.context import Context
from zerodrift._cli.options import add_command, add_format
from zerodrift._cli.output import console, emit_json, table
from zerodrift._cli.status import ExitCode

if TYPE_CHECKING:
    from zerodrift.oci.layout import Layout
    from zerodrift.protect.build import BuildOptions, BuildResult

__all__ = ["register"]

CACHE_ENV = "ZERODRIFT_CACHE_DIR"


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``build``."""
    parser = add_command(
        subparsers,
        common,
        "build",
        run,
        help="build images reproducibly into the project's OCI store",
        description="Build the spec's images (all, or those named) into the OCI\n"
        "image layout .zerodrift/store, with a golden manifest, an SBOM and, when\n"
        "the project key is usable, signed provenance. SOURCE_DATE_EPOCH is the\n"
        "spec repository's HEAD commit time, so the same commit gives the same\n"
        "digests anywhere. Debian bases are pinned in zerodrift.lock (commit it).",
        epilog="examples:\n  zerodrift build\n  zerodrift build web --format json\n"
        "  zerodrift build --check-reproducible\n"
        f"environment: {CACHE_ENV} overrides the base cache (.zerodrift/cache).\n"
        "exit codes: 0 built, 1 hardening failed or not reproducible, 3 bad spec or "
        "lock mismatch, 4 tool or IO error.",
    )
    parser.add_argument("images", nargs="*", metavar="IMAGE", help="images to build")
    parser.add_argument(
        "--check-reproducible",
        action="store_true",
        help="build twice in two fresh folders and compare every digest",
    )
    parser.add_argument(
        "--update-lock",
        action="store_true",
        help="accept Debian packages that resolve differently from zerodrift.lock",
    )
    parser.add_argument(
        "--compression",
        choices=["gzip", "zstd"],
        default="gzip",
        help="layer compression (default: gzip, readable by every tool)",
    )
    add_format(parser)


def run(ctx: Context) -> int:
    """Build, record each image in the audit trail, and print the digests."""
    from zerodrift.errors import ZerodriftError
    from zerodrift.oci.layout import Layout
    from zerodrift.protect.build import build_images

    project = ctx.project
    fleet = ctx.spec.fleet
    options = _options(ctx)
    if ctx.args.check_reproducible:
        return _check_reproducible(ctx, options)
    layout = Layout.open_or_create(project.state_dir / "store")
    layout.discard_stale_ingest()
    try:
        results = build_images(project.root, fleet, ctx.args.images, layout, options)
    except ZerodriftError as exc:
        subject = ",".join(ctx.args.images) or "all images"
        ctx.record("image.build_failed", subject,
                   {"reference": exc.reference, "message": exc.message})  # fmt: skip
        raise
    for result in results:
        ctx.record("image.build", f"{result.image_name}@{result.manifest_digest}",
                   _audit_details(result))  # fmt: skip
    _render(ctx.args.format, results, layout)
    return ExitCode.OK


def _options(ctx: Context) -> BuildOptions:
    from zerodrift.protect.build import BuildOptions

    state = ctx.project.state_dir
    cache = Path(os.environ.get(CACHE_ENV) or state / "cache")
    return BuildOptions(
        cache_dir=cache,
        work_dir=state / "tmp",
        compression=ctx.args.compression,
        update_lock=ctx.args.update_lock,
        signer=_signer(ctx),
        progress=_progress(ctx),
    )


def _signer(ctx: Context) -> Any:
    if not ctx.project.private_key_path.exists():
        return None
    return ctx.signer()


def _progress(ctx: Context) -> Any:
    if getattr(ctx.args, "quiet", 0):
        return None

    def show(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    return show


def _audit_details(result: BuildResult) -> dict[str, Any]:
    return {
        "manifest_digest": result.manifest_digest,
        "config_digest": result.config_digest,
        "layers": [layer.descriptor.digest for layer in result.layers],
        "merkle_root": result.merkle_root,
        "recipe_digest": result.recipe_digest,
        "commit": result.commit,
        "dirty": result.dirty,
        "source_date_epoch": result.source_date_epoch,
        "signed": bool(result.attestations),
    }


def _render(fmt: str, results: list[BuildResult], layout: Layout) -> None:
    if fmt == "json":
        emit_json(
            "build",
            {
                "store": str(layout.path),
                "images": [_result_dict(result) for result in results],
            },
        )
        return
    out = console()
    for r in results:
        signed = "signed" if r.attestations else "unsigned"
        out.print(
            f"{r.image_name}@{r.manifest_digest}  {len(r.layers)} layers, "
            f"{r.entries} paths, {signed}"
        )


def _result_dict(result: BuildResult) -> dict[str, Any]:
    return {
        "image": result.image_name,
        "manifest_digest": result.manifest_digest,
        "config_digest": result.config_digest,
        "layers": [
            {
                "digest": layer.descriptor.digest,
                "diff_id": layer.diff_id,
                "media_type": layer.descriptor.media_type,
                "size": layer.descriptor.size,
            }
            for layer in result.layers
        ],
        "golden_manifest": result.golden_manifest.digest,
        "merkle_root": result.merkle_root,
        "entries": result.entries,
        "recipe_digest": result.recipe_digest,
        "commit": result.commit,
        "dirty": result.dirty,
        "source_date_epoch": result.source_date_epoch,
        "packages": [p.to_dict() for p in result.packages],
        "attestations": [a.digest for a in result.attestations],
    }


def _check_reproducible(ctx: Context, options: BuildOptions) -> int:
    """Build into two fresh layouts in two fresh folders and compare digests."""
    from dataclasses import replace

    from zerodrift.errors import VerificationError
    from zerodrift.oci.layout import Layout
    from zerodrift.protect.build import build_images

    digests: list[dict[str, tuple[str, ...]]] = []
    for attempt in (1, 2):
        with tempfile.TemporaryDirectory(prefix=f"zerodrift-repro{attempt}-") as tmp:
            layout = Layout.create(Path(tmp) / "store")
            unsigned = replace(options, signer=None, work_dir=Path(tmp) / "work")
            results = build_images(
                ctx.project.root, ctx.spec.fleet, ctx.args.images, layout, unsigned
            )
            digests.append({r.image_name: _fingerprint(r) for r in results})
    differing = sorted(n for n in digests[0] if digests[0][n] != digests[1].get(n))
    ctx.record("image.reproducibility", ",".join(sorted(digests[0])),
               {"reproducible": not differing, "differing": differing})  # fmt: skip
    rows = [
        (name, first[0], "yes" if name not in differing else "NO")
        for name, first in sorted(digests[0].items())
    ]
    if ctx.args.format == "json":
        emit_json(
            "reproducibility",
            {
                "reproducible": not differing,
                "images": [
                    {"image": n, "manifest_digest": d, "reproducible": r == "yes"}
                    for n, d, r in rows
                ],
            },
        )
    else:
        table(None, ["image", "manifest digest", "reproducible"], rows)
    if differing:
        raise VerificationError(
            f"not reproducible: {', '.join(differing)} gave different digests",
            hint="compare the two builds' layers with 'diffoscope'; check for "
            "files generated at build time",
            reference="build-not-reproducible",
        )
    return ExitCode.OK


def _fingerprint(result: BuildResult) -> tuple[str, ...]:
    return (
        result.manifest_digest,
        result.config_digest,
        result.golden_manifest.digest,
        *(layer.descriptor.digest for layer in result.layers),
    )
