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
        help="build twice in two fresh folders and compare every digest, with "
        "each other and with the image last built from the same commit",
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
    layout = Layout.open_or_create(project.store_dir)
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
                   _audit_details(result, options.compression))  # fmt: skip
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


def _audit_details(result: BuildResult, compression: str) -> dict[str, Any]:
    return {
        "manifest_digest": result.manifest_digest,
        "config_digest": result.config_digest,
        "layers": [layer.descriptor.digest for layer in result.layers],
        "merkle_root": result.merkle_root,
        "recipe_digest": result.recipe_digest,
        "commit": result.commit,
        "dirty": result.dirty,
        "source_date_epoch": result.source_date_epoch,
        "compression": compression,
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
    """Build twice in fresh folders; compare with each other and with the store.

    Two fresh builds that agree show the recipe is deterministic; agreeing
    with the image recorded for the same commit (``image.build`` in the audit
    trail) shows that what is stored and signed is what the source gives.
    """
    from dataclasses import replace

    from zerodrift.errors import VerificationError
    from zerodrift.oci.layout import Layout
    from zerodrift.protect.build import build_images

    digests: list[dict[str, tuple[str, ...]]] = []
    commits: dict[str, str | None] = {}
    for attempt in (1, 2):
        with tempfile.TemporaryDirectory(prefix=f"zerodrift-repro{attempt}-") as tmp:
            layout = Layout.create(Path(tmp) / "store")
            unsigned = replace(options, signer=None, work_dir=Path(tmp) / "work")
            results = build_images(
                ctx.project.root, ctx.spec.fleet, ctx.args.images, layout, unsigned
            )
            digests.append({r.image_name: _fingerprint(r) for r in results})
            commits = {r.image_name: None if r.dirty else r.commit for r in results}
    differing = sorted(n for n in digests[0] if digests[0][n] != digests[1].get(n))
    recorded = _recorded_builds(ctx, commits, options.compression)
    unlike_store = sorted(
        n
        for n, digest in recorded.items()
        if n not in differing and digest != digests[0][n][0]
    )
    ctx.record(
        "image.reproducibility",
        ",".join(sorted(digests[0])),
        {
            "reproducible": not differing and not unlike_store,
            "differing": differing,
            "unlike_store": unlike_store,
            "compared_with_store": sorted(recorded),
        },
    )
    rows = [
        (
            name,
            first[0],
            "yes" if name not in differing else "NO",
            _store_verdict(name, recorded, unlike_store),
        )
        for name, first in sorted(digests[0].items())
    ]
    if ctx.args.format == "json":
        emit_json(
            "reproducibility",
            {
                "reproducible": not differing and not unlike_store,
                "images": [
                    {
                        "image": n,
                        "manifest_digest": d,
                        "reproducible": r == "yes",
                        "stored_digest": recorded.get(n),
                        "matches_store": None if n not in recorded else m == "yes",
                    }
                    for n, d, r, m in rows
                ],
            },
        )
    else:
        table(
            None,
            ["image", "manifest digest", "reproducible", "same as recorded build"],
            rows,
        )
    if differing:
        raise VerificationError(
            f"not reproducible: {', '.join(differing)} gave different digests",
            hint="compare the two builds' layers with 'diffoscope'; check for "
            "files generated at build time",
            reference="build-not-reproducible",
        )
    if unlike_store:
        raise VerificationError(
            f"not reproducible: {', '.join(unlike_store)} rebuilt from the commit "
            "of the stored image gave another digest",
            hint="the stored image was not built from this source as committed: "
            "find its build with 'zerodrift audit log --action image.build' "
            "and rebuild it with 'zerodrift build'",
            reference="build-unlike-store",
        )
    return ExitCode.OK


def _recorded_builds(
    ctx: Context, commits: dict[str, str | None], compression: str
) -> dict[str, str]:
    """The newest recorded build of each image from the same clean commit.

    Builds recorded before the compression was written down used gzip.
    """
    from zerodrift.govern.audit import RecordFilter

    found: dict[str, str] = {}
    builds = ctx.audit.records(RecordFilter(action="image.build", newest_first=True))
    for record in builds:
        name = record.subject.partition("@")[0]
        details = record.details
        if (
            name in commits
            and name not in found
            and commits[name] is not None
            and details.get("commit") == commits[name]
            and not details.get("dirty")
            and details.get("compression", "gzip") == compression
        ):
            found[name] = str(details["manifest_digest"])
        if len(found) == len(commits):
            break
    return found


def _store_verdict(name: str, recorded: dict[str, str], unlike: list[str]) -> str:
    if name not in recorded:
        return "-"
    return "NO" if name in unlike else "yes"


def _fingerprint(result: BuildResult) -> tuple[str, ...]:
    return (
        result.manifest_digest,
        result.config_digest,
        result.golden_manifest.digest,
        *(layer.descriptor.digest for layer in result.layers),
    )
