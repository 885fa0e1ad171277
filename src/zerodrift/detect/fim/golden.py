"""Baselines from an image's golden manifest: no trust on first scan.

The image build emits a golden manifest (media type
:data:`MANIFEST_MEDIA_TYPE`, schema ``zerodrift.golden-manifest/v1``)::

    {"schema": "zerodrift.golden-manifest/v1", "image": "web",
     "entries": [{"path": "/usr/bin/env", "type": "file", "mode": 493,
                  "uid": 0, "gid": 0, "size": 43976, "sha256": "...",
                  "xattrs": {"security.capability": "<base64>"}}, ...],
     "merkle_root": "..."}

Its entries become baseline entries for the same paths under ``root``.
What a manifest cannot know (inode, link count, times) is left unrecorded,
so it is never compared for those entries. A manifest given as a DSSE
envelope is verified against the trusted keys first.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from securesystemslib.signer import Signer

from zerodrift.detect.fim.rules import ATTRIBUTES, Rule, RuleSet, excluded, sort_key
from zerodrift.detect.fim.scanner import Entry
from zerodrift.errors import ConfigError, Location
from zerodrift.protect.dsse import verify_envelope
from zerodrift.protect.keys import PublicKey

__all__ = ["MANIFEST_MEDIA_TYPE", "create_from_manifest", "manifest_entries"]

MANIFEST_MEDIA_TYPE = "application/vnd.zerodrift.golden-manifest.v1+json"
SCHEMA = "zerodrift.golden-manifest/v1"
MANIFEST_XATTRS = ("security.capability", "security.ima", "security.evm")
"""The extended attributes a golden manifest records (and so compares)."""

RUNTIME_PATHS = (
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/dev",
    "/proc",
    "/sys",
)
"""Paths the runtime mounts over, never in an image: excluded by default."""

_TYPES = {
    "file": "file",
    "hardlink": "file",
    "dir": "dir",
    "symlink": "symlink",
    "char": "char",
    "block": "block",
    "fifo": "fifo",
}


def create_from_manifest(
    path: Path,
    manifest: Path,
    signer: Signer,
    *,
    keys: Sequence[PublicKey],
    root: Path,
    rules: RuleSet | None,
) -> dict[str, Any]:
    """Write a signed baseline at ``path`` from a golden manifest.

    Without ``rules``, every attribute of every manifest path is compared
    (severity high) and the walk covers the whole ``root`` except the paths
    the runtime mounts over (:data:`RUNTIME_PATHS`). Only the extended
    attributes a manifest records are compared (:data:`MANIFEST_XATTRS`).

    Raises:
        ConfigError: The manifest is unreadable or malformed.
        VerificationError: A signed manifest fails verification.
        OperationalError: The baseline cannot be written.
    """
    from zerodrift.detect.fim.monitor import write_entries

    data = _load(manifest, keys)
    base = str(root.absolute()).rstrip("/")
    if rules is None:
        from zerodrift.detect.findings import Severity

        top = Rule(base or "/", frozenset(ATTRIBUTES), Severity.HIGH)
        rules = RuleSet((top,), exclude=tuple(base + p for p in RUNTIME_PATHS))
    rules = dataclasses.replace(rules, xattr_names=MANIFEST_XATTRS)
    entries = list(manifest_entries(data, manifest, base, rules))
    if not any(e.path == os.fsencode(base or "/") for e in entries):
        # The image root is not a manifest entry: only its type is known.
        entries.append(Entry(os.fsencode(base or "/"), "dir"))
    entries.sort(key=lambda e: sort_key(e.path))
    source = f"manifest:{data.get('image', '?')}"
    return write_entries(path, rules, entries, signer, source)


def manifest_entries(
    data: dict[str, Any], name: Path, base: str, rules: RuleSet
) -> Iterator[Entry]:
    """Baseline entries for the manifest entries the rules watch.

    Raises:
        ConfigError: An entry is malformed (its index is named).
    """
    for index, raw in enumerate(data["entries"]):
        try:
            entry = _entry(raw, base)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"manifest entry {index} is malformed: {exc}",
                location=Location(str(name), field=f"entries.{index}"),
                hint="the manifest must follow zerodrift.golden-manifest/v1",
                reference="fim-manifest-invalid",
            ) from exc
        found = rules.lookup(entry.path)
        if found is None or excluded(found[1], entry.path):
            continue
        yield entry


def _entry(raw: dict[str, Any], base: str) -> Entry:
    kind = _TYPES[raw["type"]]
    path = raw["path"]
    if not path.startswith("/"):
        raise ValueError(f"path {path!r} is not absolute")
    rdev = raw.get("rdev")
    return Entry(
        os.fsencode(base + path if path != "/" else base or "/"),
        kind,
        mode=int(raw["mode"]),
        uid=int(raw["uid"]),
        gid=int(raw["gid"]),
        size=raw.get("size") if kind == "file" else None,
        hash=raw.get("sha256") if kind == "file" else None,
        target=raw.get("target") if kind == "symlink" else None,
        xattrs=dict(raw["xattrs"]) if raw.get("xattrs") is not None else None,
        rdev=(int(rdev[0]), int(rdev[1])) if rdev else None,
    )


def _load(manifest: Path, keys: Sequence[PublicKey]) -> dict[str, Any]:
    try:
        data = json.loads(manifest.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read golden manifest {manifest}: {exc}",
            location=Location(str(manifest)),
            reference="fim-manifest-invalid",
        ) from exc
    if isinstance(data, dict) and "payloadType" in data:
        payload = verify_envelope(data, keys, payload_type=MANIFEST_MEDIA_TYPE)
        data = json.loads(payload)
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ConfigError(
            f"{manifest} is not a golden manifest",
            hint=f'expected a JSON object with "schema": "{SCHEMA}"',
            location=Location(str(manifest), field="schema"),
            reference="fim-manifest-invalid",
        )
    if not isinstance(data.get("entries"), list):
        raise ConfigError(
            f"{manifest} has no entries list",
            location=Location(str(manifest), field="entries"),
            reference="fim-manifest-invalid",
        )
    return data
