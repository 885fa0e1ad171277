"""``fim watch``: kernel file events, compared with the baseline as they come.

Two event sources, both thin ``ctypes`` bindings to the Linux system calls
(the PyPI ``pyfanotify`` package delivered almost no events here):

- **fanotify** (root): one mark per filesystem (``FAN_MARK_FILESYSTEM``)
  with directory handles and names (``FAN_REPORT_DFID_NAME``), so new
  folders need no new marks. Handles are resolved with
  ``open_by_handle_at``.
- **inotify** (anyone): one watch per folder under the rules' paths; new
  folders get a watch when they appear.

Events are collected for a short moment, then each touched path is
observed and compared with its baseline entry, found through an index of
line offsets in the verified baseline file (a few bytes per entry, never
the entries themselves). No event names the entries inside a folder that
is moved in or away, so a folder that appears, vanishes or changes inode
brings them along: new ones by walking it, gone ones from the baseline lines
that follow the folder's own (up to 10,000 per batch of events; past that, a
full check runs at once). Because events can be lost (queue overflow, a
change while the watcher was down), a full check still runs on a schedule.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import select
import signal
import stat
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

from zerodrift.detect.fim.baseline import VerifiedBaseline
from zerodrift.detect.fim.compare import Change, differences
from zerodrift.detect.fim.entry import decode_entry
from zerodrift.detect.fim.rules import RuleSet, excluded
from zerodrift.detect.fim.scanner import Entry, observe_path
from zerodrift.errors import IntegrityError, OperationalError

if TYPE_CHECKING:
    from zerodrift._cli.context import Context

__all__ = ["Fanotify", "Inotify", "Watcher", "change_for"]

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

# fanotify(7) and inotify(7) constants from the kernel's uapi headers.
FAN_CLOEXEC, FAN_NONBLOCK = 0x1, 0x2
FAN_REPORT_DFID_NAME = 0x400 | 0x800
FAN_MARK_ADD, FAN_MARK_FILESYSTEM = 0x1, 0x100
FAN_MODIFY, FAN_ATTRIB, FAN_CLOSE_WRITE = 0x2, 0x4, 0x8
FAN_MOVED_FROM, FAN_MOVED_TO, FAN_CREATE, FAN_DELETE = 0x40, 0x80, 0x100, 0x200
FAN_DELETE_SELF, FAN_MOVE_SELF, FAN_Q_OVERFLOW = 0x400, 0x800, 0x4000
FAN_ONDIR = 0x40000000
FAN_INFO_DFID_NAME, FAN_INFO_DFID = 2, 3
AT_FDCWD = -100
_FAN_MASK = (
    FAN_MODIFY
    | FAN_ATTRIB
    | FAN_CLOSE_WRITE
    | FAN_MOVED_FROM
    | FAN_MOVED_TO
    | FAN_CREATE
    | FAN_DELETE
    | FAN_DELETE_SELF
    | FAN_MOVE_SELF
    | FAN_ONDIR
)
IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF, IN_Q_OVERFLOW, IN_ISDIR = 0x400, 0x800, 0x4000, 0x40000000
IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000
_IN_MASK = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
)
_SETTLE = 0.15
_EXPAND_LIMIT = 10_000
"""Entries listed for folders that appeared or vanished in one batch of events;
past it, a full check runs instead."""
OVERFLOW = b""
"""The path reported when the kernel dropped events (run a full check)."""


def _check(result: int, what: str) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")
    return result


class Fanotify:
    """Whole-filesystem fanotify marks reporting folder handles and names."""

    name = "fanotify"

    def __init__(self, roots: list[bytes]) -> None:
        flags = FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_DFID_NAME
        self.fd = _check(_libc.fanotify_init(flags, os.O_RDONLY), "fanotify_init")
        self._mounts: list[int] = []
        _libc.fanotify_mark.argtypes = [
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint64,
            ctypes.c_int,
            ctypes.c_char_p,
        ]
        try:
            for root in roots:
                _check(
                    _libc.fanotify_mark(
                        self.fd,
                        FAN_MARK_ADD | FAN_MARK_FILESYSTEM,
                        _FAN_MASK,
                        AT_FDCWD,
                        root,
                    ),
                    f"fanotify_mark {os.fsdecode(root)}",
                )
                self._mounts.append(os.open(root, os.O_RDONLY | os.O_DIRECTORY))
        except OSError:
            self.close()
            raise

    def fileno(self) -> int:
        """The descriptor to wait on."""
        return self.fd

    def read(self) -> Iterator[bytes]:
        """Yield the paths touched by pending events."""
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        offset = 0
        while offset + 24 <= len(data):
            length, _vers, _res, meta_len, mask, fd, _pid = struct.unpack_from(
                "=IBBHQii", data, offset
            )
            if fd >= 0:
                os.close(fd)
            if mask & FAN_Q_OVERFLOW:
                yield OVERFLOW
            else:
                yield from self._paths(data[offset + meta_len : offset + length])
            offset += length

    def _paths(self, info: bytes) -> Iterator[bytes]:
        offset = 0
        while offset + 4 <= len(info):
            kind, _pad, length = struct.unpack_from("=BBH", info, offset)
            if length == 0:
                return
            if kind in (FAN_INFO_DFID_NAME, FAN_INFO_DFID):
                path = self._resolve(info[offset + 4 : offset + length], kind)
                if path is not None:
                    yield path
            offset += length

    def _resolve(self, record: bytes, kind: int) -> bytes | None:
        # Record: fsid (8 bytes), struct file_handle, then the name.
        size, _type = struct.unpack_from("=Ii", record, 8)
        handle = record[8 : 8 + 8 + size]
        name = b""
        if kind == FAN_INFO_DFID_NAME:
            name = record[8 + 8 + size :].split(b"\0", 1)[0]
        folder = self._open_handle(handle)
        if folder is None:
            return None
        if name in (b"", b"."):
            return folder
        return folder.rstrip(b"/") + b"/" + name

    def _open_handle(self, handle: bytes) -> bytes | None:
        buffer = ctypes.create_string_buffer(handle, len(handle))
        for mount in self._mounts:
            fd = _libc.open_by_handle_at(mount, buffer, os.O_PATH)
            if fd >= 0:
                try:
                    return os.readlink(f"/proc/self/fd/{fd}").encode(
                        "utf-8", "surrogateescape"
                    )
                finally:
                    os.close(fd)
        return None

    def close(self) -> None:
        """Release the descriptors."""
        for fd in (*self._mounts, self.fd):
            os.close(fd)
        self._mounts = []


class Inotify:
    """One inotify watch per folder under the roots.

    Attributes:
        unwatched: Folders left without a watch because the kernel's limit
            (``fs.inotify.max_user_watches``) was reached.
    """

    name = "inotify"

    def __init__(self, roots: list[bytes], rules: RuleSet) -> None:
        self.fd = _check(_libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC), "inotify")
        self.rules = rules
        self.unwatched = 0
        self._folders: dict[int, bytes] = {}
        _libc.inotify_add_watch.argtypes = [
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_uint32,
        ]
        for root in roots:
            self._watch_tree(root)

    def fileno(self) -> int:
        """The descriptor to wait on."""
        return self.fd

    def _watch_tree(self, top: bytes) -> None:
        if not os.path.isdir(top) or os.path.islink(top):
            return
        self._watch(top)
        for folder, names, _files in os.walk(top):
            for name in names:
                path = os.path.join(folder, name)
                found = self.rules.lookup(path)
                if found is not None and not excluded(found[1], path):
                    self._watch(path)

    def _watch(self, folder: bytes) -> None:
        descriptor = _libc.inotify_add_watch(self.fd, folder, _IN_MASK)
        if descriptor >= 0:
            self._folders[descriptor] = folder
        elif ctypes.get_errno() == errno.ENOSPC:
            self.unwatched += 1

    def read(self) -> Iterator[bytes]:
        """Yield the paths touched by pending events."""
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        offset = 0
        while offset + 16 <= len(data):
            wd, mask, _cookie, length = struct.unpack_from("=iIII", data, offset)
            name = data[offset + 16 : offset + 16 + length].rstrip(b"\0")
            offset += 16 + length
            if mask & IN_Q_OVERFLOW:
                yield OVERFLOW
                continue
            folder = self._folders.get(wd)
            if folder is None:
                continue
            path = folder + b"/" + name if name else folder
            if mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO):
                self._watch_tree(path)
            yield path

    def close(self) -> None:
        """Release the descriptor."""
        os.close(self.fd)


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _replaced(base: Entry | None, live: os.stat_result) -> bool:
    # Only when the rules record inodes can a same-named folder be told apart.
    return base is not None and base.inode is not None and base.inode != live.st_ino


def _tree(top: bytes, rules: RuleSet, limit: int) -> Iterator[bytes]:
    """Up to ``limit`` paths under folder ``top`` that the rules watch."""

    def watched(folder: bytes, name: bytes) -> bool:
        path = os.path.join(folder, name)
        found = rules.lookup(path)
        return found is not None and not excluded(found[1], path)

    count = 0
    for folder, names, files in os.walk(top):
        names[:] = [n for n in sorted(names) if watched(folder, n)]
        for name in names + [n for n in sorted(files) if watched(folder, n)]:
            count += 1
            yield os.path.join(folder, name)
            if count >= limit:
                return


def change_for(path: bytes, base: Entry | None, rules: RuleSet) -> Change | None:
    """Compare one path's live state with its baseline entry."""
    found = rules.lookup(path)
    if found is None or excluded(found[1], path):
        return None
    rule = found[0]
    try:
        live = observe_path(path, rules.algorithm)
    except OSError as exc:
        return Change(path, "unverifiable", rule.severity, rule.path, reason=str(exc))
    if live is None:
        if base is None:
            return None
        return Change(
            path, "removed", rule.severity, rule.path, {"type": (base.type, None)}
        )
    if base is None:
        return Change(
            path, "added", rule.severity, rule.path, {"type": (None, live.type)}
        )
    diff = differences(base, live, rule.attributes, rules.xattr_names)
    return Change(path, "changed", rule.severity, rule.path, diff) if diff else None


@dataclass
class Watcher:
    """The ``fim watch`` loop: events, comparisons, scheduled full checks.

    The baseline file is held open from its verification on, and entries
    are read from that open file: a file renamed over it (as ``fim update``
    does) is verified and loaded before it is used, never read in between.

    Attributes:
        reload: Opens and verifies the baseline file again when it was
            replaced; without it, a replaced baseline stops the watch.
        record_grace: Seconds a replacement may stay signed but unrecorded.
            ``fim update`` renames the new file into place and then records
            it in the database; until the record is written, the watch
            goes on with the baseline it holds.
    """

    ctx: Context
    baseline: VerifiedBaseline
    backend: str
    interval: float
    emit: Callable[[list[Change]], None] | None = None
    reload: Callable[[], VerifiedBaseline] | None = None
    record_grace: float = 5.0
    _stop: bool = False
    _reported: dict[bytes, Any] = field(default_factory=dict)
    _index: dict[bytes, int] = field(default_factory=dict)
    _handle: IO[bytes] | None = None
    _identity: tuple[int, int, int] = (0, 0, 0)
    _unrecorded_since: float | None = None
    _unwatched: int = 0

    def run(self) -> int:
        """Watch until :meth:`stop`, SIGTERM or Ctrl-C; return the exit code (0).

        Raises:
            VerificationError: The baseline was replaced by one that fails
                verification (the watch stops loudly).
            IntegrityError: Likewise, for a modified baseline, or one that
                was not recorded within :attr:`record_grace`.
        """
        rules = self.baseline.rules
        self._load(self.baseline)
        try:
            source = self._open_source(rules)
        except BaseException:
            self._release()
            raise
        previous = signal.signal(signal.SIGTERM, self._on_term)
        sys.stderr.write(
            f"fim: watching {len(rules.roots)} root(s) with {source.name}; "
            f"full check every {self.interval:g} s\n"
        )
        self._warn_unwatched(source)
        sys.stderr.flush()
        try:
            self._loop(source, rules)
        finally:
            signal.signal(signal.SIGTERM, previous)
            source.close()
            self._release()
        sys.stderr.write("fim: watch stopped\n")
        return 0

    def _warn_unwatched(self, source: Fanotify | Inotify) -> None:
        # Silence here would be a blind spot until the next full check.
        unwatched = source.unwatched if isinstance(source, Inotify) else 0
        if unwatched > self._unwatched:
            self._unwatched = unwatched
            sys.stderr.write(
                f"fim: warning: {unwatched} folder(s) have no inotify watch (the "
                "kernel's limit); changes there show at the next full check. "
                "Raise fs.inotify.max_user_watches, or run as root for fanotify\n"
            )

    def stop(self) -> None:
        """Ask the loop to end; it does within half a second."""
        self._stop = True

    def _on_term(self, _signum: int, _frame: FrameType | None) -> None:
        self.stop()

    def _open_source(self, rules: RuleSet) -> Fanotify | Inotify:
        roots = rules.roots
        if self.backend in ("auto", "fanotify"):
            try:
                return Fanotify(roots)
            except OSError as exc:
                if self.backend == "fanotify":
                    raise OperationalError(
                        f"fanotify is not available: {exc.strerror}",
                        hint="run as root, or use --backend inotify",
                        reference="fim-watch-fanotify",
                    ) from exc
        try:
            return Inotify(roots, rules)
        except OSError as exc:
            raise OperationalError(
                f"inotify is not available: {exc.strerror}",
                reference="fim-watch-inotify",
            ) from exc

    def _loop(self, source: Fanotify | Inotify, rules: RuleSet) -> None:
        due = time.monotonic() + self.interval
        while not self._stop:
            timeout = max(0.0, min(0.5, due - time.monotonic()))
            try:
                ready, _, _ = select.select([source], [], [], timeout)
            except InterruptedError:
                continue
            if ready:
                touched = self._drain(source)
                self._warn_unwatched(source)
                if OVERFLOW in touched:
                    due = 0.0
                if not self._compare(touched - {OVERFLOW}, rules):
                    due = 0.0
            if time.monotonic() >= due and not self._stop:
                # A replacement still waiting for its record postpones the
                # full check: it would read the file at the path.
                if self._check_current():
                    self._full_check()
                    due = time.monotonic() + self.interval
                else:
                    due = time.monotonic() + 0.5

    def _drain(self, source: Fanotify | Inotify) -> set[bytes]:
        touched: set[bytes] = set(source.read())
        settle = time.monotonic() + _SETTLE
        while time.monotonic() < settle:
            ready, _, _ = select.select([source], [], [], settle - time.monotonic())
            if ready:
                touched.update(source.read())
        return touched

    def _load(self, baseline: VerifiedBaseline) -> None:
        handle = baseline.path.open("rb")
        try:
            index = baseline.index(handle)
        except BaseException:
            handle.close()
            raise
        self._release()
        self.baseline = baseline
        self._handle = handle
        self._index = index
        self._identity = _identity(os.fstat(handle.fileno()))

    def _release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _check_current(self) -> bool:
        """Load a replaced baseline; False while a replacement awaits its record.

        Raises:
            IntegrityError: The baseline was removed, or changed and no
                ``reload`` is set, or the replacement stayed unrecorded
                beyond the grace period.
            VerificationError: The replacement fails verification.
        """
        try:
            current = _identity(self.baseline.path.stat())
        except FileNotFoundError:
            # Replacements are renamed into place: the path is never empty.
            raise IntegrityError(
                f"baseline {self.baseline.path} was removed while being watched",
                hint="treat the host as compromised; restore the baseline from a "
                "trusted copy",
                reference="fim-baseline-removed",
            ) from None
        if current == self._identity:
            self._unrecorded_since = None
            return True
        if self.reload is None:
            raise IntegrityError(
                f"baseline {self.baseline.path} changed while being watched",
                hint="restart 'zerodrift fim watch'",
                reference="fim-baseline-changed",
            )
        try:
            baseline = self.reload()
        except IntegrityError as exc:
            if exc.reference != "fim-baseline-replaced":
                raise
            now = time.monotonic()
            if self._unrecorded_since is None:
                self._unrecorded_since = now
            if now - self._unrecorded_since < self.record_grace:
                return False
            raise
        self._unrecorded_since = None
        self._load(baseline)
        self._reported.clear()
        sys.stderr.write("fim: baseline changed; verified and reloaded\n")
        return True

    def _compare(self, paths: set[bytes], rules: RuleSet) -> bool:
        """Report the changes among ``paths``; False when a full check is due."""
        # fanotify marks whole filesystems: most events are outside the rules.
        paths = {p for p in paths if rules.lookup(p) is not None}
        if not paths:
            return True
        self._check_current()
        bases = {p: self._entry(self._index.get(p)) for p in paths}
        below = self._below_folders(bases, rules)
        for path in below or ():
            bases.setdefault(path, self._entry(self._index.get(path)))
        changes = []
        for path, base in sorted(bases.items()):
            change = change_for(path, base, rules)
            state = None if change is None else (change.kind, repr(change.attributes))
            if self._reported.get(path) == state:
                continue
            self._reported[path] = state
            if change is not None:
                changes.append(change)
        if changes:
            self._publish(changes)
        return below is not None

    def _below_folders(
        self, bases: dict[bytes, Entry | None], rules: RuleSet
    ) -> set[bytes] | None:
        """The entries that events on folders stand for, or None past the limit.

        A folder moved in (or filled before its inotify watch was added)
        brings entries no event names; a folder moved away or deleted takes
        its recorded entries with it. A folder replaced by another of the
        same name (a new inode) does both.
        """
        found: set[bytes] = set()
        for path, base in bases.items():
            try:
                live = os.lstat(path)
            except OSError:
                live = None
            recorded = base is not None and base.type == "dir"
            arrived = (
                live is not None
                and stat.S_ISDIR(live.st_mode)
                and (not recorded or _replaced(base, live))
            )
            if arrived:
                found.update(_tree(path, rules, _EXPAND_LIMIT - len(found)))
            if recorded and (live is None or arrived):
                found.update(self._recorded_below(path, self._index[path]))
            if len(found) >= _EXPAND_LIMIT:
                return None
        return found

    def _recorded_below(self, folder: bytes, offset: int) -> Iterator[bytes]:
        # A folder's entries follow its own line: the sort key orders a path
        # before everything under it and after everything under a sibling
        # that sorts lower.
        handle = self._handle
        if handle is None:
            return
        prefix = folder.rstrip(b"/") + b"/"
        handle.seek(offset)
        handle.readline()
        count = 0
        while handle.tell() < self.baseline.content_end and count < _EXPAND_LIMIT:
            path = decode_entry(handle.readline()).path
            if not path.startswith(prefix):
                return
            count += 1
            yield path

    def _entry(self, offset: int | None) -> Entry | None:
        handle = self._handle
        if offset is None or handle is None:
            return None
        handle.seek(offset)
        return decode_entry(handle.readline())

    def _publish(self, changes: list[Change]) -> None:
        if self.emit is not None:
            self.emit(changes)
            return
        from zerodrift._cli.commands.fim import publish_changes

        publish_changes(self.ctx, self.baseline, changes, "event")

    def _full_check(self) -> None:
        from zerodrift.detect.fim.monitor import run_check

        try:
            report = run_check(self.ctx.db, self.baseline, full=True)
        except (IntegrityError, OperationalError) as exc:
            sys.stderr.write(exc.diagnostics() + "\n")
            return
        fresh = [c for c in report.changes if self._reported.get(c.path) is None]
        for change in fresh:
            self._reported[change.path] = (change.kind, repr(change.attributes))
        if fresh:
            self._publish(fresh)
