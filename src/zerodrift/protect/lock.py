"""The lock file: what each image's Debian base resolved to, pinned by hash.

``zerodrift.lock`` sits next to ``fleet.yaml`` and is committed with it. For
every image built from ``debian:<suite>`` it records the request (suite,
variant, package list), the packages that request resolved to (name,
version, architecture, ``.deb`` SHA-256), the ``SOURCE_DATE_EPOCH`` the base
was built with, and the SHA-256 of the resulting base tarball.

Rules (see ADR 0012):

- A new image, or a changed request, adds or replaces its entry; the build
  says so on stderr.
- The same request resolving to different packages, or to a different base
  tarball, fails with :class:`LockMismatchError` unless the user passes
  ``--update-lock``. Debian mirrors move and no snapshot archive is reachable,
  so this is how a silent change of the base is caught.
- The file is canonical: sorted keys, two-space indentation, one trailing
  newline, so the same content always gives the same bytes and clean diffs.

The cache key of an entry (:meth:`LockedBase.cache_key`) names the cached
base tarball under ``.zerodrift/cache/base/``; a rebuild whose lock entry is
unchanged reuses it without touching the network.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from zerodrift._internal.atomic import write_atomic
from zerodrift._internal.canonical import canonical_digest
from zerodrift.errors import ConfigError, Location

__all__ = [
    "LOCK_FILE",
    "Lock",
    "LockMismatchError",
    "LockedBase",
    "LockedPackage",
]

LOCK_FILE = "zerodrift.lock"
LOCK_VERSION = 1


class LockMismatchError(ConfigError):
    """The base resolved differently from what the lock file records."""

    reference = "lock-mismatch"


@dataclass(frozen=True, order=True)
class LockedPackage:
    """One resolved Debian package.

    Attributes:
        name: Package name.
        version: Full Debian version.
        architecture: ``amd64``, ``all``...
        sha256: Hex SHA-256 of the ``.deb`` file.
    """

    name: str
    version: str
    architecture: str
    sha256: str

    def to_dict(self) -> dict[str, str]:
        """Render for the lock file."""
        return {
            "name": self.name,
            "version": self.version,
            "architecture": self.architecture,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class LockedBase:
    """The lock entry of one image's Debian base.

    Attributes:
        base: The recipe's ``base`` (``debian:bookworm``).
        variant: The mmdebstrap variant.
        requested: The recipe's package list, sorted.
        epoch: ``SOURCE_DATE_EPOCH`` the base was built with.
        packages: What the request resolved to, sorted by name.
        rootfs_sha256: Hex SHA-256 of the base tarball mmdebstrap produced.
    """

    base: str
    variant: str
    requested: tuple[str, ...]
    epoch: int
    packages: tuple[LockedPackage, ...] = ()
    rootfs_sha256: str = ""

    def request_matches(
        self, base: str, variant: str, requested: Sequence[str]
    ) -> bool:
        """Whether this entry was made for the same request."""
        return (self.base, self.variant, self.requested) == (
            base,
            variant,
            tuple(sorted(requested)),
        )

    def cache_key(self) -> str:
        """A hex key naming the cached base built for exactly this entry."""
        return canonical_digest(self.to_dict()).removeprefix("sha256:")

    def to_dict(self) -> dict[str, Any]:
        """Render for the lock file."""
        return {
            "base": self.base,
            "variant": self.variant,
            "requested": list(self.requested),
            "epoch": self.epoch,
            "packages": [p.to_dict() for p in self.packages],
            "rootfs_sha256": self.rootfs_sha256,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LockedBase:
        """Parse a lock entry.

        Raises:
            KeyError, TypeError, ValueError: The entry is malformed.
        """
        return cls(
            base=str(data["base"]),
            variant=str(data["variant"]),
            requested=tuple(sorted(str(p) for p in data["requested"])),
            epoch=int(data["epoch"]),
            packages=tuple(
                sorted(
                    LockedPackage(
                        str(p["name"]),
                        str(p["version"]),
                        str(p["architecture"]),
                        str(p["sha256"]),
                    )
                    for p in data["packages"]
                )
            ),
            rootfs_sha256=str(data["rootfs_sha256"]),
        )


@dataclass(frozen=True)
class Lock:
    """The whole lock file: one :class:`LockedBase` per image name."""

    images: Mapping[str, LockedBase] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Lock:
        """Read ``path``; a missing file is an empty lock.

        Raises:
            ConfigError: The file is not a valid lock file.
        """
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            raise _invalid(path, str(exc)) from exc
        if not isinstance(data, dict) or data.get("lock_version") != LOCK_VERSION:
            raise _invalid(path, f"lock_version is not {LOCK_VERSION}")
        images = data.get("images")
        if not isinstance(images, dict):
            raise _invalid(path, "no images table")
        parsed = {}
        for name, entry in images.items():
            try:
                parsed[str(name)] = LockedBase.from_dict(entry)
            except (KeyError, TypeError, ValueError) as exc:
                raise _invalid(path, f"entry {name!r}: {exc}", field=name) from exc
        return cls(parsed)

    def to_bytes(self) -> bytes:
        """The canonical file content."""
        document = {
            "lock_version": LOCK_VERSION,
            "images": {k: v.to_dict() for k, v in sorted(self.images.items())},
        }
        return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()

    def save(self, path: Path) -> None:
        """Write the lock atomically (only if its content changed).

        Raises:
            OperationalError: The file cannot be written.
        """
        data = self.to_bytes()
        try:
            if path.read_bytes() == data:
                return
        except FileNotFoundError:
            pass
        write_atomic(path, data)

    def with_entry(self, name: str, entry: LockedBase) -> Lock:
        """Return a copy with ``name`` set to ``entry``."""
        return replace(self, images={**self.images, name: entry})

    def without(self, names: Sequence[str]) -> Lock:
        """Return a copy without the entries in ``names``."""
        return replace(
            self, images={k: v for k, v in self.images.items() if k not in names}
        )


def check_resolution(
    image: str, locked: LockedBase, resolved: LockedBase, *, lock_path: Path
) -> None:
    """Refuse a base that resolved differently from its lock entry.

    Raises:
        LockMismatchError: Packages, versions, hashes or the base tarball differ.
    """
    before = {p.name: p for p in locked.packages}
    after = {p.name: p for p in resolved.packages}
    changes = [f"+{n} {after[n].version}" for n in sorted(after.keys() - before.keys())]
    changes += [
        f"-{n} {before[n].version}" for n in sorted(before.keys() - after.keys())
    ]
    for name in sorted(before.keys() & after.keys()):
        old, new = before[name], after[name]
        if old != new:
            detail = (
                f"{old.version} -> {new.version}"
                if old.version != new.version
                else "same version, different .deb hash"
            )
            changes.append(f"~{name} {detail}")
    if not changes and locked.rootfs_sha256 != resolved.rootfs_sha256:
        changes.append("same packages, but the base tarball differs")
    if changes:
        raise LockMismatchError(
            f"image {image!r}: the Debian base no longer matches the lock file: "
            + ", ".join(changes),
            hint="review the change, then rebuild with --update-lock and commit "
            f"{lock_path.name}",
            location=Location(str(lock_path), field=f"images.{image}"),
        )


def _invalid(path: Path, detail: str, *, field: str | None = None) -> ConfigError:
    return ConfigError(
        f"{path} is not a valid lock file: {detail}",
        hint="restore it from git, or delete it and rebuild with --update-lock",
        location=Location(str(path), field=field),
        reference="lock-invalid",
    )
