"""``zerodrift inventory``: the asset register, its data flows and exports."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from zerodrift._cli.context import Context
from zerodrift._cli.options import add_command, add_env, add_format
from zerodrift._cli.output import console, emit_json, table
from zerodrift._cli.status import ExitCode

if TYPE_CHECKING:
    from zerodrift.identify import Inventory

__all__ = ["register"]


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``inventory``."""
    parser = add_command(
        subparsers,
        common,
        "inventory",
        run,
        help="list images, services, environments and data flows",
        epilog="examples:\n  zerodrift inventory --env prod\n"
        "  zerodrift inventory --format cyclonedx > fleet.cdx.json\n"
        "  zerodrift inventory --format mermaid\n"
        "Each run records a snapshot in the state database (unless --no-record).",
    )
    add_env(parser)
    add_format(parser, "cyclonedx", "mermaid", "dot")
    parser.add_argument(
        "--no-record",
        action="store_true",
        help="do not record a snapshot in the state database",
    )


def run(ctx: Context) -> int:
    """Build the inventory, record a snapshot, and print it."""
    from zerodrift.identify import build_inventory
    from zerodrift.identify.snapshots import record_snapshot
    from zerodrift.state import format_time

    spec = ctx.spec
    inventory = build_inventory(
        spec.fleet, spec.digest, ctx.args.env, image_digests=_built_images(ctx)
    )
    taken = datetime.now(UTC)
    unmanaged = _join_runtime(ctx, inventory, taken.timestamp())
    if not ctx.args.no_record:
        ctx.note_spec_revision()
        snapshot_id = record_snapshot(
            ctx.db, inventory, taken_at=format_time(taken), git_commit=ctx.git.commit
        )
        details: dict[str, Any] = {"snapshot": snapshot_id, "spec_digest": spec.digest}
        if unmanaged is not None:
            # What the runtime showed: compliance reports judge unmanaged nodes.
            details["unmanaged"] = sorted(str(n["name"]) for n in unmanaged)
        ctx.record("inventory.snapshot", ctx.args.env or "*", details)
    _render(ctx.args.format, inventory, taken, unmanaged)
    return ExitCode.OK


def _built_images(ctx: Context) -> dict[str, str]:
    """Manifest digest of each image in the project's store (none: not built)."""
    from zerodrift.runtime.images import OciLayoutSource

    store = OciLayoutSource(ctx.project.store_dir)
    if not (store.root / "index.json").exists():
        return {}
    return store.names()


def _join_runtime(
    ctx: Context, inventory: Inventory, now: float
) -> list[dict[str, Any]] | None:
    """Add running nodes of ``--env``; ``None`` when there is no runtime to ask."""
    if not ctx.args.env:
        return None
    from zerodrift._cli.runtime import open_session
    from zerodrift.errors import OperationalError
    from zerodrift.identify.inventory import join_nodes
    from zerodrift.runtime.backend import (
        LABEL_ENVIRONMENT,
        LABEL_FLEET,
        LABEL_GENERATION,
        LABEL_IMAGE_DIGEST,
    )

    session = open_session(ctx)
    try:
        nodes = [
            {
                "name": n.name,
                "state": n.state,
                "managed": n.managed,
                "fleet": n.labels.get(LABEL_FLEET),
                "environment": n.labels.get(LABEL_ENVIRONMENT),
                "service": n.service,
                "image_digest": n.labels.get(LABEL_IMAGE_DIGEST),
                "generation": n.labels.get(LABEL_GENERATION),
                "created_at": n.created_at,
            }
            for n in session.backend.list_nodes(ctx.args.env)
            # Another project's nodes of this fleet are not in this inventory.
            if session.owns(n) or not n.deployed_as(inventory.fleet, ctx.args.env)
        ]
    except OperationalError as exc:
        sys.stderr.write(f"note: running nodes not shown: {exc.message}\n")
        return None
    finally:
        session.close()
    return join_nodes(inventory, nodes, now=now)


def _render(
    fmt: str,
    inventory: Inventory,
    taken: datetime,
    unmanaged: list[dict[str, Any]] | None,
) -> None:
    from zerodrift.identify.flows import to_dot, to_mermaid
    from zerodrift.state import format_time

    if fmt == "json":
        extra = {} if unmanaged is None else {"unmanaged_nodes": unmanaged}
        emit_json(
            "inventory",
            {"taken_at": format_time(taken), **inventory.to_dict(), **extra},
        )
    elif fmt == "cyclonedx":
        # Imported here: the CycloneDX schema validator takes a second to load.
        from zerodrift.identify.cyclonedx import to_cyclonedx

        sys.stdout.write(to_cyclonedx(inventory, timestamp=taken) + "\n")
    elif fmt == "mermaid":
        sys.stdout.write(to_mermaid(inventory))
    elif fmt == "dot":
        sys.stdout.write(to_dot(inventory))
    else:
        _render_tables(inventory)
        _render_nodes(inventory, unmanaged)


def _render_nodes(inventory: Inventory, unmanaged: list[dict[str, Any]] | None) -> None:
    if unmanaged is None:
        return
    table(
        "Nodes",
        ["service", "node", "state", "image digest", "age"],
        [
            (s.name, n["name"], n["state"], n["image_digest"], _age(n["age_seconds"]))
            for s in inventory.services
            for n in s.nodes
        ]
        + [
            ("(unmanaged)", n["name"], n["state"], None, _age(n["age_seconds"]))
            for n in unmanaged
        ],
    )


def _render_tables(inventory: Inventory) -> None:
    console().print(f"fleet {inventory.fleet!r}  spec {inventory.spec_digest[:19]}…")
    table(
        "Images",
        ["image", "base", "packages", "user", "used by", "digest"],
        [
            (
                i.name,
                i.base,
                ", ".join(i.packages),
                i.user,
                ", ".join(i.used_by),
                "not built" if i.digest is None else i.digest[:19] + "…",
            )
            for i in inventory.images
        ],
    )
    table(
        "Services",
        [
            "environment",
            "service",
            "image",
            "replicas",
            "ports",
            "writable",
            "volumes",
            "secrets",
            "response",
        ],
        [
            (
                s.environment,
                s.name,
                s.image,
                s.replicas,
                ", ".join(s.ports),
                ", ".join(s.writable),
                ", ".join(s.volumes),
                ", ".join(s.secrets),
                s.response,
            )
            for s in inventory.services
        ],
    )
    table(
        "Data flows",
        ["from", "to", "port"],
        [
            (f.source, f.target, f"{f.port} {f.number}/{f.protocol}")
            for f in inventory.flows
        ],
    )


def _age(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
