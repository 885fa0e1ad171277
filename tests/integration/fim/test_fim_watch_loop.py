"""The ``fim watch`` loop in this process, on real kernel events and signatures.

Two stories. ``fim update`` renames the new signed baseline into place and
then records it: events between the two steps must neither stop the watch
nor be compared with the wrong file. And a folder moved in or away carries
entries no event names: they must be reported as they happen, not at the
next full check.
"""

from __future__ import annotations

import ctypes
import errno
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from securesystemslib.signer import CryptoSigner

from zerodrift._cli.context import Context
from zerodrift.detect.fim import (
    Change,
    VerifiedBaseline,
    accept_changes,
    create_baseline,
    open_baseline,
    record_baseline,
    verify_current,
    watch,
)
from zerodrift.detect.fim.entry import decode_entry
from zerodrift.detect.fim.rules import rules_for_paths
from zerodrift.detect.fim.watch import Watcher
from zerodrift.errors import IntegrityError
from zerodrift.protect.keys import (
    PublicKey,
    generate_private_key,
    load_public_key,
    load_signer,
    write_keypair,
)
from zerodrift.state import Database


@dataclass
class Setup:
    tree: Path
    path: Path
    db: Database
    signer: CryptoSigner
    key: PublicKey

    def open(self) -> VerifiedBaseline:
        baseline = open_baseline(self.path, [self.key])
        verify_current(self.db, baseline)
        return baseline


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    write_keypair(generate_private_key(), tmp_path / "k", tmp_path / "k.pub", b"p" * 10)
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("a", "b", "c", "probe", "lib/x", "lib/deep/y"):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(f"{name}\n")
    db = Database.open(f"sqlite:///{tmp_path / 'state.db'}")
    made = Setup(
        tree,
        tmp_path / "b.fim",
        db,
        load_signer(tmp_path / "k", b"p" * 10),
        load_public_key("k", tmp_path / "k.pub"),
    )
    statement, _ = create_baseline(made.path, rules_for_paths([str(tree)]), made.signer)
    record_baseline(db, made.path, statement)
    try:
        yield made
    finally:
        db.close()


def _watch(
    setup: Setup,
    steps: Callable[[Watcher, queue.Queue[list[Change]]], None],
    backend: str = "inotify",
) -> Watcher:
    """Run a watch in this thread while ``steps`` drive it from another."""
    changes: queue.Queue[list[Change]] = queue.Queue()
    watcher = Watcher(
        cast(Context, SimpleNamespace(db=setup.db)),
        setup.open(),
        backend,
        3600.0,
        emit=changes.put,
        reload=setup.open,
    )
    failures: list[BaseException] = []

    def drive() -> None:
        try:
            steps(watcher, changes)
        except BaseException as exc:  # re-raised in the test
            failures.append(exc)
        finally:
            watcher.stop()

    thread = threading.Thread(target=drive)
    thread.start()
    try:
        watcher.run()
    finally:
        watcher.stop()
        thread.join(timeout=30)
    if failures:
        raise failures[0]
    return watcher


def _next(changes: queue.Queue[list[Change]], timeout: float = 10) -> dict[bytes, str]:
    """The next reported changes, leaving out the probe file."""
    while True:
        found = {c.path: c.kind for c in changes.get(timeout=timeout)}
        found = {k: v for k, v in found.items() if not k.endswith(b"/probe")}
        if found:
            return found


def _settle(tree: Path, changes: queue.Queue[list[Change]]) -> None:
    # The watch sets up its inotify watches once run() has started: touch
    # a probe file until a change comes through.
    for _ in range(50):
        (tree / "probe").write_text("touched\n")
        try:
            changes.get(timeout=0.2)
        except queue.Empty:
            continue
        return
    raise AssertionError("the watch reported nothing")


def _collect(
    changes: queue.Queue[list[Change]], expected: set[bytes]
) -> dict[bytes, str]:
    """Changes reported until every expected path was seen (or ten seconds)."""
    seen: dict[bytes, str] = {}
    deadline = time.monotonic() + 10
    while not expected <= seen.keys() and time.monotonic() < deadline:
        try:
            batch = changes.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.update((c.path, c.kind) for c in batch if not c.path.endswith(b"/probe"))
    return seen


BACKENDS = [
    "inotify",
    pytest.param(
        "fanotify",
        marks=pytest.mark.skipif(os.geteuid() != 0, reason="fanotify needs root"),
    ),
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_folder_moved_in_is_reported_with_everything_in_it(
    setup: Setup, tmp_path: Path, backend: str
) -> None:
    tree = setup.tree
    outside = tmp_path / "prepared"
    (outside / "bin").mkdir(parents=True)
    (outside / "bin" / "implant").write_text("#!/bin/sh\n")
    (outside / "conf").write_text("x\n")

    def steps(watcher: Watcher, changes: queue.Queue[list[Change]]) -> None:
        _settle(tree, changes)
        outside.rename(tree / "kit")
        expected = {
            bytes(tree / p) for p in ("kit", "kit/bin", "kit/bin/implant", "kit/conf")
        }
        assert _collect(changes, expected) == dict.fromkeys(expected, "added")

    _watch(setup, steps, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_folder_moved_away_is_reported_with_everything_it_held(
    setup: Setup, tmp_path: Path, backend: str
) -> None:
    tree = setup.tree

    def steps(watcher: Watcher, changes: queue.Queue[list[Change]]) -> None:
        _settle(tree, changes)
        (tree / "lib").rename(tmp_path / "taken")
        expected = {bytes(tree / p) for p in ("lib", "lib/x", "lib/deep", "lib/deep/y")}
        assert _collect(changes, expected) == dict.fromkeys(expected, "removed")

    _watch(setup, steps, backend)


def test_a_folder_too_big_to_list_brings_the_full_check_forward(
    setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watch, "_EXPAND_LIMIT", 5)
    tree = setup.tree
    outside = tmp_path / "bulk"
    outside.mkdir()
    for number in range(8):
        (outside / f"f{number}").write_text("x\n")

    def steps(watcher: Watcher, changes: queue.Queue[list[Change]]) -> None:
        _settle(tree, changes)
        outside.rename(tree / "bulk")
        bulk = tree / "bulk"
        expected = {bytes(bulk)} | {bytes(bulk / f"f{n}") for n in range(8)}
        # The interval is an hour: only the early full check can find them.
        assert _collect(changes, expected) == dict.fromkeys(expected, "added")

    _watch(setup, steps)


def test_folders_left_without_an_inotify_watch_are_warned_about(
    setup: Setup,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tree = setup.tree
    real = watch._libc.inotify_add_watch

    def limited(fd: int, folder: bytes, mask: int) -> int:
        # Stand-in for a full fs.inotify.max_user_watches: new folders fail.
        if b"/kit" in folder:
            ctypes.set_errno(errno.ENOSPC)
            return -1
        return int(real(fd, folder, mask))

    monkeypatch.setattr(watch._libc, "inotify_add_watch", limited)
    outside = tmp_path / "kit"
    (outside / "inner").mkdir(parents=True)

    def steps(watcher: Watcher, changes: queue.Queue[list[Change]]) -> None:
        _settle(tree, changes)
        outside.rename(tree / "kit")
        expected = {bytes(tree / "kit"), bytes(tree / "kit" / "inner")}
        assert _collect(changes, expected) == dict.fromkeys(expected, "added")
        (tree / "a").write_text("a changed\n")
        assert _next(changes) == {bytes(tree / "a"): "changed"}

    _watch(setup, steps)
    err = capsys.readouterr().err
    assert "fim: warning: 2 folder(s) have no inotify watch" in err
    assert "fs.inotify.max_user_watches" in err


def test_a_folder_replaced_under_its_name_is_compared_entry_by_entry(
    setup: Setup, tmp_path: Path
) -> None:
    tree = setup.tree
    swap = tmp_path / "swap"
    (swap / "deep").mkdir(parents=True)
    (swap / "deep" / "y").write_text("lib/deep/y\n")  # same content
    (swap / "z").write_text("new\n")

    def steps(watcher: Watcher, changes: queue.Queue[list[Change]]) -> None:
        _settle(tree, changes)
        (tree / "lib").rename(tmp_path / "old")
        swap.rename(tree / "lib")
        lib = tree / "lib"
        expected = {bytes(lib / p) for p in ("x", "z", "deep", "deep/y")}
        seen = _collect(changes, expected)
        assert seen[bytes(lib / "x")] == "removed"
        assert seen[bytes(lib / "z")] == "added"
        # New inodes: the folder and the file that kept its content changed.
        assert seen[bytes(lib / "deep")] == "changed"
        assert seen[bytes(lib / "deep" / "y")] == "changed"

    _watch(setup, steps)


def test_events_between_the_rename_and_the_record_keep_the_watch_going(
    setup: Setup,
) -> None:
    tree = setup.tree

    def steps(watcher: Watcher, changes: queue.Queue[list[Change]]) -> None:
        _settle(tree, changes)
        first = watcher.baseline
        (tree / "a").write_text("a changed\n")
        assert _next(changes) == {bytes(tree / "a"): "changed"}
        # The first half of 'fim update': the new file, signed, in place.
        statement, _ = accept_changes(first, [bytes(tree / "a")], setup.signer)
        (tree / "b").write_text("b changed\n")
        # Compared with the baseline the watch holds, which is still valid.
        assert _next(changes) == {bytes(tree / "b"): "changed"}
        assert watcher.baseline is first
        # The second half: the record. The next event loads the new file.
        record_baseline(setup.db, setup.path, statement)
        (tree / "c").write_text("c changed\n")
        assert _next(changes) == {bytes(tree / "c"): "changed"}
        assert watcher.baseline.digest != first.digest
        # The accepted change is part of the new baseline: undoing it is a
        # change now.
        (tree / "a").write_text("a\n")
        assert _next(changes) == {bytes(tree / "a"): "changed"}

    _watch(setup, steps)


def test_a_replacement_never_recorded_stops_the_watch(setup: Setup) -> None:
    tree = setup.tree

    def steps(watcher: Watcher, changes: queue.Queue[list[Change]]) -> None:
        watcher.record_grace = 0.5
        _settle(tree, changes)
        (tree / "a").write_text("a changed\n")
        accept_changes(watcher.baseline, [bytes(tree / "a")], setup.signer)
        (tree / "b").write_text("b changed\n")
        assert bytes(tree / "b") in _next(changes)
        # An event after the grace period: the watch stops loudly.
        time.sleep(0.6)
        (tree / "c").write_text("c changed\n")
        with pytest.raises(queue.Empty):
            _next(changes, timeout=2)

    with pytest.raises(IntegrityError, match="not the one recorded last"):
        _watch(setup, steps)


def test_a_removed_baseline_stops_the_watch(setup: Setup) -> None:
    tree = setup.tree

    def steps(watcher: Watcher, changes: queue.Queue[list[Change]]) -> None:
        _settle(tree, changes)
        setup.path.unlink()
        (tree / "a").write_text("a changed\n")
        with pytest.raises(queue.Empty):
            _next(changes, timeout=2)

    with pytest.raises(IntegrityError, match="removed while being watched"):
        _watch(setup, steps)


def test_the_index_covers_only_the_file_that_was_verified(setup: Setup) -> None:
    tree = setup.tree
    baseline = setup.open()
    with setup.path.open("rb") as handle:
        index = baseline.index(handle)
        for path, offset in index.items():
            handle.seek(offset)
            assert decode_entry(handle.readline()).path == path
    assert {bytes(tree / n) for n in ("a", "b", "c", "probe")} <= set(index)
    # The path now names another validly signed baseline.
    (tree / "a").write_text("a changed\n")
    accept_changes(baseline, [bytes(tree / "a")], setup.signer)
    with setup.path.open("rb") as handle, pytest.raises(IntegrityError):
        baseline.index(handle)
