"""``zerodrift init [DIR]``: scaffold a working example project, offline."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from zerodrift._cli.context import Context
from zerodrift._cli.options import add_command, add_format
from zerodrift._cli.output import console, emit_json
from zerodrift._cli.status import ExitCode
from zerodrift.errors import ConfigError, OperationalError
from zerodrift.govern.audit import AuditTrail
from zerodrift.project import SPEC_FILE, STATE_DIR, Project
from zerodrift.protect.keys import (
    generate_private_key,
    load_signer,
    read_passphrase,
    write_keypair,
)
from zerodrift.spec import load_spec
from zerodrift.state import Database

__all__ = ["register"]

_TEMPLATE = "example"
# Template files whose names cannot be package data as-is.
_RENAMES = {"gitignore": ".gitignore"}


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Add ``init``."""
    parser = add_command(
        subparsers,
        common,
        "init",
        run,
        help="create an example project: spec, state folder, signing key",
        epilog="example:\n  ZERODRIFT_KEY_PASSPHRASE=... zerodrift init shop\n"
        "Creates fleet.yaml (web, api and db services; dev, staging and prod),\n"
        "app/ sources, .gitignore, keys/project.pub, and .zerodrift/ with the\n"
        "state database and the encrypted private key.",
    )
    parser.add_argument(
        "directory",
        nargs="?",
        type=Path,
        default=Path(),
        help="where to create the project (default: here)",
    )
    parser.add_argument("--name", help="fleet name (default: the folder's name)")
    parser.add_argument(
        "--algorithm",
        choices=["ecdsa-p256", "ed25519"],
        default="ecdsa-p256",
        help="signing key algorithm",
    )
    add_format(parser)


def run(ctx: Context) -> int:
    """Scaffold the project; nothing is written unless every step can succeed."""
    target: Path = ctx.args.directory.resolve()
    name = ctx.args.name or _fleet_name(target.name)
    _check_target(target)
    passphrase = read_passphrase(confirm=True, purpose="the new project key")

    staging = _stage(target, name, passphrase, ctx.args.algorithm)
    created = _move_into_place(staging, target)

    project = Project(target)
    spec = load_spec(project.spec_path)  # proves the scaffold is valid
    db = Database.open(project.database_url)
    try:
        trail = AuditTrail(db)
        trail.append(
            "project.init",
            spec.fleet.name,
            {
                "spec_digest": spec.digest,
                "files": sorted(created),
                "key": project.key_name,
            },
        )
        signer = load_signer(project.private_key_path, passphrase)
        checkpoint = trail.checkpoint(signer, target / STATE_DIR / "audit-witness.json")
    finally:
        db.close()

    result = {
        "project": str(target),
        "fleet": spec.fleet.name,
        "files": sorted(created),
        "keyid": checkpoint.keyid,
        "spec_digest": spec.digest,
    }
    if ctx.args.format == "json":
        emit_json("init", result)
    else:
        console().print(
            f"created project {spec.fleet.name!r} in {target}\n"
            f"  signing key {checkpoint.keyid[:16]}… (private key encrypted in "
            f"{STATE_DIR}/keys/)\n"
            "next:\n  zerodrift spec validate\n  zerodrift inventory\n"
            "  zerodrift audit verify"
        )
    return ExitCode.OK


def _fleet_name(folder: str) -> str:
    cleaned = "".join(c if c.isalnum() else "-" for c in folder.lower()).strip("-")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = "fleet-" + cleaned
    return cleaned[:63].rstrip("-") or "fleet"


def _check_target(target: Path) -> None:
    if (target / SPEC_FILE).exists():
        raise ConfigError(
            f"{target} is already a zerodrift project",
            hint="choose another folder, or remove fleet.yaml first",
            reference="project-exists",
        )
    if target.exists() and not target.is_dir():
        raise ConfigError(
            f"{target} exists and is not a folder", reference="project-exists"
        )
    template = resources.files("zerodrift.templates") / _TEMPLATE
    clashes = [
        entry.name
        for entry in template.iterdir()
        if (target / _RENAMES.get(entry.name, entry.name)).exists()
    ]
    if (target / STATE_DIR).exists():
        clashes.append(STATE_DIR)
    if clashes:
        raise ConfigError(
            f"{target} already has {', '.join(sorted(clashes))}",
            hint="init writes into an empty folder or a new one",
            reference="project-exists",
        )


def _stage(target: Path, name: str, passphrase: bytes, algorithm: Any) -> Path:
    parent = target if target.exists() else target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".zerodrift-init-", dir=parent))
    except OSError as exc:
        raise OperationalError(
            f"cannot write in {parent}: {exc.strerror}",
            hint="check the folder's permissions",
            reference="write-failed",
        ) from exc
    try:
        template = resources.files("zerodrift.templates") / _TEMPLATE
        with resources.as_file(template) as source:
            for entry in source.iterdir():
                destination = staging / _RENAMES.get(entry.name, entry.name)
                if entry.is_dir():
                    shutil.copytree(entry, destination)
                else:
                    shutil.copyfile(entry, destination)
        spec = staging / SPEC_FILE
        spec.write_text(
            spec.read_text(encoding="utf-8").replace("{{name}}", name), encoding="utf-8"
        )
        (staging / STATE_DIR).mkdir(mode=0o700)
        write_keypair(
            generate_private_key(algorithm),
            staging / STATE_DIR / "keys" / "project.key",
            staging / "keys" / "project.pub",
            passphrase,
        )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def _move_into_place(staging: Path, target: Path) -> list[str]:
    """Rename staged entries into ``target``; each rename is atomic."""
    created = [entry.name for entry in staging.iterdir()]
    if not target.exists():
        os.rename(staging, target)
        return created
    for entry in created:
        os.rename(staging / entry, target / entry)
    staging.rmdir()
    return created
