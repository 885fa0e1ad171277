"""The scanner on real files: hard cases are reported, never crash or hang."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zerodrift.detect.fim.entry import decode_entry
from zerodrift.detect.fim.rules import rules_for_paths, sort_key
from zerodrift.detect.fim.scanner import (
    VANISHED,
    Pipeline,
    deep_observe,
    observe_line,
    walk,
)

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _walk(top: Path) -> list[bytes]:
    return [item.path for item in walk(rules_for_paths([str(top)]))]


def test_walk_order_is_the_baseline_order(tmp_path: Path) -> None:
    for name in ["a", "a.b", "a-", "b"]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "x").write_text("x")
    (tmp_path / "a" / "x.y").write_text("x")
    paths = _walk(tmp_path)
    assert paths == sorted(paths, key=sort_key)
    assert len(paths) == 10


def test_special_files_are_recorded_not_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    line = observe_line(os.fsencode(tmp_path / "fifo"), "sha256", bytearray(1024))
    entry = decode_entry(line)
    assert entry.type == "fifo"
    assert entry.hash is None


@ROOT_ONLY
def test_device_numbers_are_recorded(tmp_path: Path) -> None:
    os.mknod(tmp_path / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    entry = decode_entry(
        observe_line(os.fsencode(tmp_path / "null"), "sha256", bytearray(1024))
    )
    assert (entry.type, entry.rdev, entry.mode) == ("char", (1, 3), 0o600)


def test_symlink_loops_are_links_not_walks(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    (tmp_path / "self").symlink_to(".")
    paths = _walk(tmp_path)
    assert len(paths) == 4
    entry = decode_entry(
        observe_line(os.fsencode(tmp_path / "self"), "sha256", bytearray(1024))
    )
    assert (entry.type, entry.target) == ("symlink", ".")


def test_names_that_are_not_utf8(tmp_path: Path) -> None:
    odd = os.fsencode(tmp_path) + b"/caf\xe9\xff"
    with open(odd, "wb") as handle:
        handle.write(b"latin-1 name")
    paths = _walk(tmp_path)
    assert odd in paths
    entry = decode_entry(observe_line(odd, "sha256", bytearray(1024)))
    assert entry.path == odd
    assert entry.hash == hashlib.sha256(b"latin-1 name").hexdigest()


def test_sparse_large_file_hashes_its_holes(tmp_path: Path) -> None:
    path = tmp_path / "sparse"
    size = 64 << 20
    with path.open("wb") as handle:
        handle.truncate(size - 1)
        handle.seek(size - 1)
        handle.write(b"\x01")
    assert os.stat(path).st_blocks * 512 < size // 8  # really sparse
    expected = hashlib.sha256(bytes(size - 1) + b"\x01").hexdigest()
    for algorithm in ("sha256",):
        entry = decode_entry(
            observe_line(os.fsencode(path), algorithm, bytearray(1 << 20))
        )
        assert entry.hash == expected
        assert entry.size == size


def test_other_algorithms(tmp_path: Path) -> None:
    import blake3

    path = tmp_path / "f"
    path.write_bytes(b"content" * 1000)
    buffer = bytearray(1 << 20)
    sha512 = decode_entry(observe_line(os.fsencode(path), "sha512", buffer))
    b3 = decode_entry(observe_line(os.fsencode(path), "blake3", buffer))
    assert sha512.hash == hashlib.sha512(b"content" * 1000).hexdigest()
    assert b3.hash == blake3.blake3(b"content" * 1000).hexdigest()


def test_a_vanished_path_is_reported_as_gone(tmp_path: Path) -> None:
    assert observe_line(os.fsencode(tmp_path / "gone"), "sha256", bytearray(8)) == (
        VANISHED
    )


def _grow(path: str, stop: Any) -> None:
    with open(path, "ab") as handle:
        while not stop.is_set():
            handle.write(b"x" * 4096)
            handle.flush()
            time.sleep(0.0002)


def test_a_file_that_keeps_changing_is_not_given_a_digest(tmp_path: Path) -> None:
    path = tmp_path / "growing"
    path.write_bytes(os.urandom(32 << 20))
    # A separate process appends without pause while the file is hashed.
    context = multiprocessing.get_context("fork")
    stop = context.Event()
    writer = context.Process(target=_grow, args=(str(path), stop))
    writer.start()
    try:
        deadline = time.monotonic() + 5
        while path.stat().st_size == 32 << 20 and time.monotonic() < deadline:
            time.sleep(0.001)
        deep = deep_observe(
            os.fsencode(path), "file", True, "sha256", bytearray(1 << 16)
        )
    finally:
        stop.set()
        writer.join()
    assert deep.hash is None
    assert deep.error == "content kept changing while it was read"


@ROOT_ONLY
def test_an_unreadable_file_is_reported_not_fatal() -> None:
    # Root reads everything, so the observation runs in a child without root,
    # in a folder every parent of which that user can enter.
    folder = Path(tempfile.mkdtemp(prefix="zd-fim-"))
    os.chmod(folder, 0o755)  # noqa: S103 - test fixture
    secret = folder / "secret"
    secret.write_text("no")
    os.chmod(secret, 0o600)
    code = (
        "import os, sys\n"
        "from zerodrift.detect.fim.scanner import observe_line\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "sys.stdout.buffer.write(observe_line(sys.argv[1].encode(), 'sha256', "
        "bytearray(1024)))\n"
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", code, str(secret)],
            check=True,
            capture_output=True,
        ).stdout
    finally:
        shutil.rmtree(folder)
    entry = decode_entry(out)
    assert entry.hash is None
    assert entry.error == "cannot read: Permission denied"
    assert entry.size == 2  # the metadata is still recorded


@pytest.fixture
def bind_loop(tmp_path: Path) -> Iterator[Path]:
    top = tmp_path / "top"
    (top / "inner").mkdir(parents=True)
    (top / "file").write_text("x")
    result = subprocess.run(
        ["mount", "--bind", str(top), str(top / "inner")],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {result.stderr.decode().strip()}")
    try:
        yield top
    finally:
        subprocess.run(["umount", str(top / "inner")], check=False)


@ROOT_ONLY
def test_a_bind_mount_loop_is_not_followed(bind_loop: Path) -> None:
    skipped: list[tuple[bytes, str]] = []
    rules = rules_for_paths([str(bind_loop)])
    paths = [i.path for i in walk(rules, on_skip=lambda p, r: skipped.append((p, r)))]
    assert paths == [
        os.fsencode(p) for p in (bind_loop, bind_loop / "file", bind_loop / "inner")
    ]
    assert skipped[0][0] == os.fsencode(bind_loop / "inner")
    # With one_filesystem off, the loop is still caught by the folder check.
    rules.one_filesystem = False
    loops: list[tuple[bytes, str]] = []
    paths = [i.path for i in walk(rules, on_skip=lambda p, r: loops.append((p, r)))]
    assert len(paths) < 10
    assert any("loop" in reason for _, reason in loops)


def test_pipeline_keeps_order_across_worker_processes(tmp_path: Path) -> None:
    for index in range(300):
        (tmp_path / f"f{index:03d}").write_bytes(os.urandom(index))
    paths = sorted(os.fsencode(p) for p in tmp_path.iterdir())
    seen: list[bytes] = []
    with Pipeline[bytes]("sha256", workers=2, batch=16) as pipeline:
        for path in paths:
            for item, line in pipeline.push(path, path):
                assert line is not None
                assert decode_entry(line).path == item
                seen.append(item)
        for item, _line in pipeline.finish():
            seen.append(item)
    assert seen == paths


def test_a_path_vanishing_between_walk_and_read_is_removed(tmp_path: Path) -> None:
    from zerodrift.detect.fim.compare import CheckStats, compare

    (tmp_path / "stays").write_text("a")
    (tmp_path / "goes").write_text("b")
    rules = rules_for_paths([str(tmp_path)])
    lines = []
    for item in walk(rules):
        lines.append(observe_line(item.path, "sha256", bytearray(1024)))
    walked = list(walk(rules))
    (tmp_path / "goes").unlink()  # after the walk listed it, before it is read
    with Pipeline[Any]("sha256", workers=1) as pipeline:
        changes = list(
            compare(
                iter(lines),
                iter(walked),
                rules,
                full=True,
                pipeline=pipeline,
                stats=CheckStats(),
            )
        )
    assert [(c.kind, c.path) for c in changes] == [
        ("removed", os.fsencode(tmp_path / "goes"))
    ]


def _general_line(path: bytes) -> bytes:
    from zerodrift.detect.fim.entry import Entry, encode_entry
    from zerodrift.detect.fim.scanner import complete

    entry = Entry.from_stat(path, os.lstat(path))
    complete(entry, deep_observe(path, entry.type, True, "sha256", bytearray(64)))
    return encode_entry(entry)


def test_the_quick_file_path_writes_the_general_line(tmp_path: Path) -> None:
    # Regular files take a shortcut in observe_line; files with extended
    # attributes (and anything unusual) take the general path. Both must
    # give the same line, whatever the buffer size.
    plain = tmp_path / "plain"
    plain.write_bytes(os.urandom(300))
    empty = tmp_path / "empty"
    empty.touch()
    tagged = tmp_path / "tagged"
    tagged.write_bytes(b"x" * 100)
    os.setxattr(tagged, "user.zerodrift-test", b"v")
    for file in (plain, empty, tagged):
        path = os.fsencode(file)
        for size in (64, 1 << 20):
            assert observe_line(path, "sha256", bytearray(size)) == _general_line(path)
    line = decode_entry(observe_line(os.fsencode(plain), "sha256", bytearray(64)))
    assert line.hash == hashlib.sha256(plain.read_bytes()).hexdigest()
    assert line.xattrs == {}
    assert decode_entry(
        observe_line(os.fsencode(tagged), "sha256", bytearray(64))
    ).xattrs == {"user.zerodrift-test": "dg=="}


def test_walks_of_adjacent_spans_add_up_to_the_whole_walk(tmp_path: Path) -> None:
    for folder in ["a/b/c", "a/b.d", "a-", "e\\f/g", "h"]:
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "x").write_text("x")
        (tmp_path / folder / "y.txt").write_text("y")
    rules = rules_for_paths([str(tmp_path)])
    whole = [item.path for item in walk(rules)]
    # Cut at every key and at keys that fall between and inside entries.
    keys = [sort_key(path) for path in whole]
    cuts = keys + [key + b"\0" for key in keys] + [key + b"!" for key in keys]
    for cut in cuts:
        below = [item.path for item in walk(rules, span=(None, cut))]
        above = [item.path for item in walk(rules, span=(cut, None))]
        assert below + above == whole, cut
        assert all(sort_key(path) < cut for path in below)
    low, high = keys[3], keys[-4]
    middle = [item.path for item in walk(rules, span=(low, high))]
    assert middle == [p for p in whole if low <= sort_key(p) < high]


def test_an_unlisted_folder_across_a_cut_is_reported_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zerodrift.detect.fim import scanner

    big = tmp_path / "big"
    big.mkdir()
    for index in range(6):
        (big / f"f{index}").write_text(str(index))
    rules = rules_for_paths([str(tmp_path)])
    whole = [item.path for item in walk(rules)]
    cut = sort_key(bytes(big / "f3"))
    listing = scanner._list

    def refuse_big(path: bytes) -> Any:
        return "Permission denied" if path == bytes(big) else listing(path)

    monkeypatch.setattr(scanner, "_list", refuse_big)
    below = list(walk(rules, span=(None, cut)))
    above = list(walk(rules, span=(cut, None)))
    # The share holding the folder reports it; the other learns only that
    # the folder could not be listed, so its lines there are unverifiable.
    assert [(i.path, i.failed, i.hidden) for i in below] == [
        (whole[0], False, False),
        (bytes(big), True, False),
    ]
    assert [(i.path, i.failed, i.hidden) for i in above] == [(bytes(big), True, True)]


def test_spans_add_up_with_several_roots_nested_rules_and_excludes(
    tmp_path: Path,
) -> None:
    from zerodrift.detect.fim.rules import RuleSet

    for folder in ["etc/app/conf.d", "etc/skip", "usr/lib/py/cache", "usr/lib/x"]:
        (tmp_path / folder).mkdir(parents=True)
        for name in ["a", "b.pyc", "c.gz"]:
            (tmp_path / folder / name).write_text(name)
    (tmp_path / "lone").write_text("a root that is a file")
    skip = str(tmp_path / "etc/skip")
    rules = RuleSet.from_dict(
        {
            "version": 1,
            "exclude": ["*.pyc"],
            "paths": [
                {"path": str(tmp_path / "etc"), "exclude": [skip]},
                {"path": str(tmp_path / "etc/app"), "severity": "high"},
                {"path": str(tmp_path / "usr/lib"), "exclude": ["*.gz"]},
                {"path": str(tmp_path / "usr/lib/py"), "severity": "low"},
                {"path": str(tmp_path / "lone")},
            ],
        }
    )
    whole = [(item.path, item.rule.path) for item in walk(rules)]
    assert len(whole) > 10
    assert not any(path.endswith((b".pyc", b"/skip")) for path, _ in whole)
    keys = [sort_key(path) for path, _ in whole]
    for cut in keys + [key + b"\0" for key in keys] + [b"\0", b"\xff"]:
        below = [(i.path, i.rule.path) for i in walk(rules, span=(None, cut))]
        above = [(i.path, i.rule.path) for i in walk(rules, span=(cut, None))]
        assert below + above == whole, cut
