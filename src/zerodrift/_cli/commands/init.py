"""``zerodrift init [DIR]``: scaffold a working example project, offline."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerodrift._cli.context import Context
from zerodrift._cli.options import add_command, add_format
from zerodrift._cli.output import console, emit_json
from zerodrift._cli.status import ExitCode
from zerodrift.errors import ConfigError, OperationalError
from zerodrift.project import SPEC_FILE, STATE_DIR, Project

if TYPE_CHECKING:
    from zerodrift.govern.audit import Checkpoint
    from zerodrift.spec import LoadedSpec

__all__ = ["register"]

_TEMPLATE = "example"
# The key the example spec's trust policy names (keys/project.pub).
_KEY = "project"
_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")
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
    """Scaffold the project; nothing is left behind unless every step succeeds.

    Every file, the state database and the first audit record are made in a
    staging folder next to the target; only then are they renamed into place.
    """
    from zerodrift.protect.keys import check_passphrase, read_passphrase

    target: Path = ctx.args.directory.resolve()
    name = _fleet_name(ctx.args.name, target.name)
    _check_target(target)
    passphrase = read_passphrase(confirm=True, purpose="the new project key")
    check_passphrase(passphrase)

    new_folder = _first_missing(target)
    try:
        staging = _stage(target, name, passphrase, ctx.args.algorithm)
        try:
            spec, checkpoint = _record_init(Project(staging), passphrase)
            created = _move_into_place(staging, target)
        finally:
            shutil.rmtree(staging.parent, ignore_errors=True)
    except BaseException:
        if new_folder is not None:
            shutil.rmtree(new_folder, ignore_errors=True)
        raise
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


def _record_init(staged: Project, passphrase: bytes) -> tuple[LoadedSpec, Checkpoint]:
    """Validate the staged spec, open the state database, record and sign."""
    from zerodrift.govern.audit import AuditTrail
    from zerodrift.protect.keys import load_signer
    from zerodrift.spec import load_spec
    from zerodrift.state import Database

    spec = load_spec(staged.spec_path)  # proves the scaffold is valid
    files = sorted(entry.name for entry in staged.root.iterdir())
    db = Database.open(staged.database_url)
    try:
        trail = AuditTrail(db)
        trail.append(
            "project.init",
            spec.fleet.name,
            {"spec_digest": spec.digest, "files": files, "key": _KEY},
        )
        signer = load_signer(staged.state_dir / "keys" / f"{_KEY}.key", passphrase)
        checkpoint = trail.checkpoint(signer, staged.witness_path)
    finally:
        db.close()
    return spec, checkpoint


def _fleet_name(given: str | None, folder: str) -> str:
    """Return the fleet name: ``--name``, or one derived from the folder.

    Raises:
        ConfigError: ``--name`` is not a valid fleet name.
    """
    if given is not None:
        if not _NAME.fullmatch(given):
            raise ConfigError(
                f"{given!r} is not a valid fleet name",
                hint="use lower-case letters, digits and '-', starting with a "
                "letter (at most 63 characters)",
                reference="fleet-name-invalid",
            )
        return given
    cleaned = "".join(c if c.isalnum() else "-" for c in folder.lower()).strip("-")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = "fleet-" + cleaned
    return cleaned[:63].rstrip("-") or "fleet"


def _first_missing(target: Path) -> Path | None:
    """Return the outermost folder of ``target`` that init would create."""
    missing = None
    for folder in (target, *target.parents):
        if folder.exists():
            break
        missing = folder
    return missing


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
    from zerodrift.protect.keys import generate_private_key, write_keypair

    parent = target if target.exists() else target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        holder = Path(tempfile.mkdtemp(prefix=".zerodrift-init-", dir=parent))
    except OSError as exc:
        raise OperationalError(
            f"cannot write in {parent}: {exc.strerror}",
            hint="check the folder's permissions",
            reference="write-failed",
        ) from exc
    # mkdtemp makes a 0700 folder; the project folder gets the umask's mode.
    staging = holder / "project"
    try:
        staging.mkdir()
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
            staging / STATE_DIR / "keys" / f"{_KEY}.key",
            staging / "keys" / f"{_KEY}.pub",
            passphrase,
        )
    except BaseException:
        shutil.rmtree(holder, ignore_errors=True)
        raise
    return staging


def _move_into_place(staging: Path, target: Path) -> list[str]:
    """Rename staged entries into ``target``; undo them all if one fails.

    Raises:
        OperationalError: A rename failed; ``target`` is as it was.
    """
    created = sorted(entry.name for entry in staging.iterdir())
    if not target.exists():
        _rename(staging, target)
        return created
    moved: list[str] = []
    try:
        for entry in created:
            _rename(staging / entry, target / entry)
            moved.append(entry)
    except BaseException:
        for entry in moved:
            os.rename(target / entry, staging / entry)
        raise
    return created


def _rename(source: Path, destination: Path) -> None:
    try:
        os.rename(source, destination)
    except OSError as exc:
        raise OperationalError(
            f"cannot create {destination}: {exc.strerror}",
            hint="check the folder's permissions",
            reference="write-failed",
        ) from exc
