"""The lock file: canonical bytes, parsing errors, and resolution changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from zerodrift.errors import ConfigError
from zerodrift.protect.lock import (
    Lock,
    LockedBase,
    LockedPackage,
    LockMismatchError,
    check_resolution,
)

BUSYBOX = LockedPackage("busybox-static", "1:1.35.0-4", "amd64", "aa" * 32)
ENTRY = LockedBase(
    "debian:bookworm", "extract", ("busybox-static",), 1_700_000_000, (BUSYBOX,),
    "bb" * 32,
)  # fmt: skip


def test_lock_round_trips_with_canonical_bytes(tmp_path: Path) -> None:
    path = tmp_path / "zerodrift.lock"
    lock = Lock().with_entry("web", ENTRY).with_entry("api", ENTRY)

    lock.save(path)

    assert Lock.load(path) == lock
    assert path.read_bytes() == lock.to_bytes()
    assert path.read_text().endswith("}\n")
    assert path.read_text().index('"api"') < path.read_text().index('"web"')


def test_missing_lock_is_empty(tmp_path: Path) -> None:
    assert Lock.load(tmp_path / "zerodrift.lock").images == {}


def test_malformed_lock_names_the_file_and_entry(tmp_path: Path) -> None:
    path = tmp_path / "zerodrift.lock"
    path.write_text('{"lock_version": 1, "images": {"web": {"base": "x"}}}')

    with pytest.raises(ConfigError) as info:
        Lock.load(path)
    assert info.value.reference == "lock-invalid"
    assert info.value.location is not None
    assert info.value.location.field == "web"


def test_request_match_ignores_package_order() -> None:
    entry = LockedBase("debian:bookworm", "extract", ("a", "b"), 1)

    assert entry.request_matches("debian:bookworm", "extract", ["b", "a"])
    assert not entry.request_matches("debian:trixie", "extract", ["a", "b"])


def test_new_version_is_a_mismatch_naming_the_package(tmp_path: Path) -> None:
    newer = LockedPackage("busybox-static", "1:1.36.1-1", "amd64", "cc" * 32)
    resolved = LockedBase(
        ENTRY.base, ENTRY.variant, ENTRY.requested, ENTRY.epoch, (newer,), "dd" * 32
    )

    with pytest.raises(LockMismatchError) as info:
        check_resolution("web", ENTRY, resolved, lock_path=tmp_path / "zerodrift.lock")
    assert "busybox-static 1:1.35.0-4 -> 1:1.36.1-1" in info.value.message
    assert "--update-lock" in (info.value.hint or "")


def test_same_packages_different_tarball_is_a_mismatch(tmp_path: Path) -> None:
    resolved = LockedBase(
        ENTRY.base, ENTRY.variant, ENTRY.requested, ENTRY.epoch, (BUSYBOX,), "ee" * 32
    )

    with pytest.raises(LockMismatchError, match="base tarball differs"):
        check_resolution("web", ENTRY, resolved, lock_path=tmp_path / "zerodrift.lock")


def test_identical_resolution_passes(tmp_path: Path) -> None:
    check_resolution("web", ENTRY, ENTRY, lock_path=tmp_path / "zerodrift.lock")
