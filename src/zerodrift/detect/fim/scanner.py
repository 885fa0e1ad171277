"""Walking and hashing a tree: streaming, ordered, in worker processes.

The walker visits paths depth first with names byte-sorted (the order of
:func:`~zerodrift.detect.fim.rules.sort_key`), never follows symbolic links,
stays on one filesystem unless the rules say otherwise, and never descends
into a folder it is already inside (bind-mount loops). It yields one
:class:`Entry` per path with what ``lstat`` tells; reading contents (hashes)
and extended attributes is "deep" work done in batches by worker processes,
because for many small files the interpreter lock makes threads slower than
one process. :class:`Pipeline` keeps a bounded number of batches in flight
and hands results back in walk order, so memory does not grow with the tree.
"""

from __future__ import annotations

import base64
import functools
import gc
import hashlib
import multiprocessing
import operator
import os
import stat
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from zerodrift.detect.fim.entry import Entry, encode_entry, stat_fingerprint
from zerodrift.detect.fim.rules import Rule, RuleSet, excluded, sort_key

__all__ = [
    "VANISHED",
    "Deep",
    "Entry",
    "Pipeline",
    "WalkItem",
    "complete",
    "deep_observe",
    "Span",
    "mount_points",
    "observe_line",
    "observe_path",
    "walk",
]

T = TypeVar("T")

_CHUNK = 1 << 20
_SMALL = 1 << 20
_RETRIES = 2


@dataclass(slots=True)
class Deep:
    """Result of reading one path's content and extended attributes."""

    hash: str | None = None
    xattrs: dict[str, str] | None = None
    stat: tuple[int, int, int, int] | None = None
    error: str | None = None
    vanished: bool = False


def deep_observe(
    path: bytes, kind: str, want_hash: bool, algorithm: str, buffer: bytearray
) -> Deep:
    """Hash a regular file's content and read extended attributes.

    A file that changes while it is read is read again; if it keeps
    changing, the result carries an error instead of a digest. The returned
    ``stat`` is (inode, size, mtime, ctime) as seen while reading, so the
    caller can record metadata that matches the digest.
    """
    result = Deep()
    try:
        result.xattrs = _xattrs(path)
    except FileNotFoundError:
        return Deep(vanished=True)
    except OSError as exc:
        result.error = f"cannot read extended attributes: {exc.strerror}"
    if want_hash and kind == "file":
        _hash_into(result, path, algorithm, buffer)
    return result


def _hash_into(result: Deep, path: bytes, algorithm: str, buffer: bytearray) -> None:
    for _attempt in range(_RETRIES + 1):
        try:
            digest, before, after = _hash_once(path, algorithm, buffer)
        except FileNotFoundError:
            result.vanished = True
            return
        except OSError as exc:
            result.error = f"cannot read: {exc.strerror or exc}"
            return
        if before == after:
            result.hash, result.stat = digest, after
            return
    result.error = "content kept changing while it was read"


def _hash_once(
    path: bytes, algorithm: str, buffer: bytearray
) -> tuple[str, tuple[int, int, int, int], tuple[int, int, int, int]]:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_NONBLOCK
    try:
        fd = os.open(path, flags | os.O_NOATIME)
    except PermissionError:
        fd = os.open(path, flags)
    try:
        first = os.fstat(fd)
        if not stat.S_ISREG(first.st_mode):
            raise OSError(0, "no longer a regular file")
        before = _identity(first)
        hasher = _hasher(algorithm)
        if before[1] > _SMALL:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        view = memoryview(buffer)
        total = 0
        while count := os.readv(fd, [buffer]):
            hasher.update(view[:count])
            total += count
            # A short read that reaches the size seen by fstat is the end; a
            # file growing meanwhile is caught by the fstat below.
            if count < len(buffer) and total == before[1]:
                break
        return hasher.hexdigest(), before, _identity(os.fstat(fd))
    finally:
        os.close(fd)


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _hasher(algorithm: str) -> Any:
    if algorithm == "blake3":
        from blake3 import blake3

        return blake3()
    return hashlib.new(algorithm)


def _xattrs(path: bytes) -> dict[str, str]:
    names = os.listxattr(path, follow_symlinks=False)
    return {
        name: base64.b64encode(os.getxattr(path, name, follow_symlinks=False)).decode()
        for name in sorted(names)
    }


Task = bytes
"""A path to observe completely."""

VANISHED = b""
"""Worker answer: the path disappeared before it could be observed."""

_worker_buffer = bytearray()


def observe_line(path: bytes, algorithm: str, buffer: bytearray) -> bytes:
    """Observe one path completely and return its encoded baseline line.

    A path that is gone returns :data:`VANISHED`.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return VANISHED
    except OSError as exc:
        return encode_entry(Entry(path, "unknown", error=str(exc.strerror)))
    if stat.S_ISREG(st.st_mode):
        line = _plain_file_line(path, st, algorithm, buffer)
        if line is not None:
            return line
    entry = Entry.from_stat(path, st)
    deep = deep_observe(path, entry.type, True, algorithm, buffer)
    if deep.vanished:
        return VANISHED
    complete(entry, deep)
    return encode_entry(entry)


def _plain_file_line(
    path: bytes, st: os.stat_result, algorithm: str, buffer: bytearray
) -> bytes | None:
    """The line of a regular file read without surprises, else None.

    The common case, written out for speed (it runs once per file of an
    ``init`` or ``--full`` check): one read pass whose closing ``fstat``
    matches the ``lstat``, and no extended attributes. Anything else (an
    attribute, an error, a change while reading) returns None, and the
    caller takes the general path, which retries and reports it.
    """
    try:
        if os.listxattr(path, follow_symlinks=False):
            return None
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_NONBLOCK
        try:
            fd = os.open(path, flags | os.O_NOATIME)
        except PermissionError:
            fd = os.open(path, flags)
    except OSError:
        return None
    try:
        size = st.st_size
        hasher = _hasher(algorithm)
        if size > _SMALL:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        view = memoryview(buffer)
        total = 0
        while count := os.readv(fd, [buffer]):
            hasher.update(view[:count])
            total += count
            if count < len(buffer) and total == size:
                break
        after = os.fstat(fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    if (after.st_ino, after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (
        st.st_ino,
        size,
        st.st_mtime_ns,
        st.st_ctime_ns,
    ):
        return None
    return b"%s%s\t\t{}\t\t" % (
        stat_fingerprint(path, st),
        hasher.hexdigest().encode(),
    )


def _run_batch(algorithm: str, tasks: list[Task]) -> list[bytes | None]:
    global _worker_buffer  # noqa: PLW0603 - one read buffer per worker process
    if not _worker_buffer:
        _worker_buffer = bytearray(_CHUNK)
    return [observe_line(path, algorithm, _worker_buffer) for path in tasks]


@dataclass
class _Chunk(Generic[T]):
    items: list[tuple[T, int]] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    pending: Future[list[bytes | None]] | None = None
    done: list[bytes | None] | None = None


Result = bytes | None


class Pipeline(Generic[T]):
    """Observation in worker processes, results handed back in input order.

    ``push`` an item with an optional task; ordered ``(item, line)`` pairs
    come out of ``push`` and ``finish`` (``line`` is None for items pushed
    without a task). Worker processes start only when
    a full batch is ready, so a check of a small tree never pays for them.
    """

    def __init__(
        self, algorithm: str, workers: int | None = None, batch: int = 512
    ) -> None:
        self.algorithm = algorithm
        self.workers = workers or os.cpu_count() or 1
        self.batch = batch
        self.limit = 4 * self.workers
        self._chunks: deque[_Chunk[T]] = deque([_Chunk()])
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Pipeline[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        # NOTE: an executor, not multiprocessing.Pool: Pool.terminate() can
        # hang for ever when it is called while its task thread is blocked
        # feeding a full pipe (seen when a baseline write failed mid-scan).
        # Shutting an executor down cancels what has not started and waits
        # only for the batches already running.
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            gc.unfreeze()

    def push(self, item: T, task: Task | None) -> Sequence[tuple[T, Result]]:
        """Queue ``item`` (and its task); return whatever is ready, in order."""
        # A plain function, not a generator: it runs once per path, and
        # almost always has nothing to hand back.
        if not self._chunks:
            self._chunks.append(_Chunk())
        chunk = self._chunks[-1]
        if task is None:
            chunk.items.append((item, -1))
        else:
            chunk.items.append((item, len(chunk.tasks)))
            chunk.tasks.append(task)
        if len(chunk.tasks) < self.batch and len(chunk.items) < 8 * self.batch:
            return ()
        self._submit(chunk)
        self._chunks.append(_Chunk())
        ready: list[tuple[T, Result]] = []
        while len(self._chunks) > self.limit or self._head_ready():
            ready.extend(self._pop())
        return ready

    def finish(self) -> Iterator[tuple[T, Result]]:
        """Yield everything still queued, in order."""
        if not self._chunks:
            return
        last = self._chunks[-1]
        if self._pool is None:
            last.done = _run_batch(self.algorithm, last.tasks)
        else:
            self._submit(last)
        while self._chunks:
            yield from self._pop()

    def _submit(self, chunk: _Chunk[T]) -> None:
        if not chunk.tasks or self.workers <= 1:
            chunk.done = _run_batch(self.algorithm, chunk.tasks)
            return
        if self._pool is None:
            # Forked workers share the parent's pages until written to; the
            # collector would write to every object it scans, so the objects
            # that exist now are kept out of its sight while workers live.
            gc.freeze()
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("fork")
            )
        chunk.pending = self._pool.submit(_run_batch, self.algorithm, chunk.tasks)

    def _head_ready(self) -> bool:
        head = self._chunks[0]
        if len(self._chunks) == 1:
            return False
        return head.done is not None or (
            head.pending is not None and head.pending.done()
        )

    def _pop(self) -> Iterator[tuple[T, Result]]:
        chunk = self._chunks.popleft()
        results = chunk.done
        if results is None:
            results = chunk.pending.result() if chunk.pending else []
        for item, index in chunk.items:
            yield item, (results[index] if index >= 0 else None)


def mount_points() -> set[bytes]:
    """Mount points of this process's mount namespace."""
    points: set[bytes] = set()
    try:
        with open("/proc/self/mountinfo", "rb") as handle:
            for line in handle:
                raw = line.split(b" ")[4]
                points.add(_unescape_mount(raw))
    except OSError:
        return points
    return points


def _unescape_mount(raw: bytes) -> bytes:
    if b"\\" not in raw:
        return raw
    out = bytearray()
    index = 0
    while index < len(raw):
        if raw[index : index + 1] == b"\\" and raw[index + 1 : index + 4].isdigit():
            out.append(int(raw[index + 1 : index + 4], 8))
            index += 4
        else:
            out += raw[index : index + 1]
            index += 1
    return bytes(out)


@dataclass(slots=True)
class WalkItem:
    """One walked path with the rule governing it.

    ``entry`` is set for folders (the walker needs their ``lstat``) and for
    paths that failed (``entry.error``); other paths are observed later, by
    a worker. ``hidden`` marks a folder outside the walk's span that could
    not be listed: not the span's to report, but its descendants inside
    the span are unverifiable, not removed.
    """

    path: bytes
    rule: Rule
    entry: Entry | None = None
    hidden: bool = False

    @property
    def failed(self) -> bool:
        """Whether the walker could not observe or list this path."""
        return self.entry is not None and self.entry.error is not None


Span = tuple[bytes | None, bytes | None]
"""Sort keys ``(low, high)``: a walk of ``low <= key < high`` (None: no bound)."""


def walk(
    rules: RuleSet,
    *,
    roots: list[bytes] | None = None,
    on_skip: Callable[[bytes, str], None] | None = None,
    span: Span = (None, None),
) -> Iterator[WalkItem]:
    """Yield every watched path in baseline order, with its ``lstat`` data.

    Paths that vanish between listing and ``lstat`` are skipped (they are
    gone). A folder that cannot be listed is yielded with ``error`` set, so
    the comparison can tell "unreadable" from "removed". With ``span``, only
    paths whose :func:`~zerodrift.detect.fim.rules.sort_key` lies in it are
    yielded: the walk enters the folders that lead there and stops at the
    first key past it, so spans cut from one baseline share out the tree.
    """
    mounts = mount_points() if rules.one_filesystem else set()
    low, high = span
    for root in rules.roots if roots is None else roots:
        key = sort_key(root)
        if high is not None and key >= high:
            return
        hidden = False
        if low is not None and key < low:
            if not low.startswith(key + b"\0"):
                continue  # the whole root lies before the span
            hidden = True
        walker = _Walker(rules, mounts, on_skip, span)
        yield from walker.root(root, hidden=hidden)
        yield from walker.run()
        if walker.past:
            return


# A folder being walked: its remaining listing, rule and exclusion pattern,
# (device, inode), and whether a bound of the span lies inside it (only
# then are its entries' sort keys compared with the span).
_Frame = tuple[Iterator["os.DirEntry[bytes]"], Rule, Any, tuple[int, int], bool]


@dataclass
class _Walker:
    """Depth-first walk of one root with an explicit stack (no recursion)."""

    rules: RuleSet
    mounts: set[bytes]
    on_skip: Callable[[bytes, str], None] | None
    span: Span
    device: int = 0
    past: bool = False
    stack: list[_Frame] = field(default_factory=list)
    ancestors: set[tuple[int, int]] = field(default_factory=set)

    def root(self, root: bytes, *, hidden: bool) -> Iterator[WalkItem]:
        """Yield the root's own item and start walking below it."""
        found = self.rules.lookup(root)
        if found is not None:
            observe = functools.partial(os.lstat, root)
            yield from self._enter(root, observe, *found, hidden, top=True)

    def run(self) -> Iterator[WalkItem]:
        """Yield every path below the root, depth first, in key order."""
        stack, rule_at = self.stack, self.rules.rule_at
        low, high = self.span
        while stack:
            entries, rule, pattern, here, bounded = stack[-1]
            for item in entries:
                path = item.path
                switched = rule_at(path)
                item_rule, item_pattern = switched if switched else (rule, pattern)
                if item_pattern is not None and excluded(item_pattern, path):
                    continue
                hidden = False
                if bounded:
                    key = path.replace(b"/", b"\0")
                    if high is not None and key >= high:
                        self.past = True  # every later path is past the span
                        stack.clear()
                        return
                    if low is not None and key < low:
                        if not low.startswith(key + b"\0"):
                            continue
                        hidden = True  # a folder leading into the span
                try:
                    is_dir = item.is_dir(follow_symlinks=False)
                except OSError:
                    is_dir = False
                if not is_dir:
                    if not hidden:
                        yield WalkItem(path, item_rule)
                    continue
                observe = functools.partial(item.stat, follow_symlinks=False)
                yield from self._enter(path, observe, item_rule, item_pattern, hidden)
                break  # into the folder just pushed, if it was
            else:
                stack.pop()
                self.ancestors.discard(here)

    def _enter(
        self,
        path: bytes,
        observe: Callable[[], os.stat_result],
        rule: Rule,
        pattern: Any,
        hidden: bool,
        *,
        top: bool = False,
    ) -> Iterator[WalkItem]:
        # A path the listing says is a folder (or the root): lstat it with
        # ``observe``, and walk it if it still is one.
        try:
            st = observe()
        except FileNotFoundError:
            return
        except OSError as exc:
            if not hidden:
                failed = Entry(path, "unknown", error=str(exc.strerror))
                yield WalkItem(path, rule, failed)
            return
        entry = Entry.from_stat(path, st)
        if entry.type == "dir":
            if top:
                self.device = st.st_dev
            yield from self._folder(entry, st, rule, pattern, hidden)
        elif not hidden:
            yield WalkItem(path, rule)

    def _folder(
        self, entry: Entry, st: os.stat_result, rule: Rule, pattern: Any, hidden: bool
    ) -> Iterator[WalkItem]:
        # Yield a folder's own item (unless hidden) and push its listing.
        key = (st.st_dev, st.st_ino)
        reason = None
        if key in self.ancestors:
            reason = "folder loop (a bind mount of one of its parents)"
        elif (
            self.rules.one_filesystem
            and self.ancestors
            and (st.st_dev != self.device or entry.path in self.mounts)
        ):
            reason = "another filesystem (one_filesystem is on)"
        if reason is not None:
            if hidden:
                return  # the span that holds the folder reports it
            if self.on_skip is not None:
                self.on_skip(entry.path, reason)
            yield WalkItem(entry.path, rule, entry)
            return
        listing = _list(entry.path)
        if isinstance(listing, str):
            entry.error = listing
            yield WalkItem(entry.path, rule, entry, hidden)
            return
        if not hidden:
            yield WalkItem(entry.path, rule, entry)
        inside = sort_key(entry.path) + b"\0"
        bounded = any(b is not None and b.startswith(inside) for b in self.span)
        self.ancestors.add(key)
        self.stack.append((iter(listing), rule, pattern, key, bounded))


_NAME = operator.attrgetter("name")


def _list(path: bytes) -> list[os.DirEntry[bytes]] | str:
    try:
        with os.scandir(path) as it:
            listing = list(it)
    except FileNotFoundError:
        return []
    except OSError as exc:
        return f"cannot list folder: {exc.strerror}"
    listing.sort(key=_NAME)
    return listing


def observe_path(path: bytes, algorithm: str) -> Entry | None:
    """Observe one path completely, in this process (None: it does not exist).

    Raises:
        OSError: ``lstat`` failed for another reason than absence.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    entry = Entry.from_stat(path, st)
    complete(entry, deep_observe(path, entry.type, True, algorithm, bytearray(_CHUNK)))
    return entry


def complete(entry: Entry, deep: Deep | None) -> None:
    """Fold a deep result into ``entry`` (and read a link target)."""
    if entry.type == "symlink" and entry.target is None:
        try:
            entry.target = os.fsdecode(os.readlink(entry.path))
        except OSError as exc:
            entry.error = f"cannot read link: {exc.strerror}"
    if deep is None:
        return
    entry.xattrs = deep.xattrs
    if deep.hash is not None:
        entry.hash = deep.hash
    if deep.stat is not None:
        entry.inode, entry.size, entry.mtime, entry.ctime = deep.stat
    if deep.error is not None:
        entry.error = deep.error
