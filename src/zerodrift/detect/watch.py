"""Continuous drift detection: runtime events and file events trigger checks.

:func:`watch` runs :func:`~zerodrift.detect.check.check_environment` at
start, on a schedule, and whenever something may have changed:

- podman's event stream reports an exec session, a container dying, being
  created, paused or started (read in a thread; reconnects when the podman
  service restarts);
- the kernel reports a file event (inotify) in a node's declared writable
  paths, watched from the host through ``/proc/PID/root``.

Events only *trigger* a check; the check itself compares the whole
environment with its declaration, so a burst of thousands of file events
costs one check and cannot hide the drift among them. The content of every
image in use is re-read from the runtime's storage and verified in full
against its signed golden manifest at start and every ``content_interval``
seconds: no event reports a write into the storage's layer folders. Each
distinct finding is reported once per run. ``SIGTERM`` and ``SIGINT`` stop
the loop cleanly.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zerodrift._internal.canonical import canonical_digest
from zerodrift.detect.check import CheckResult, check_environment
from zerodrift.detect.findings import Finding
from zerodrift.detect.nodes import writable_roots
from zerodrift.errors import OperationalError
from zerodrift.runtime.backend import LABEL_SERVICE

if TYPE_CHECKING:
    from zerodrift.reconcile.session import Session

__all__ = ["TRIGGER_ACTIONS", "FileWatcher", "WatchStats", "watch"]

_logger = logging.getLogger(__name__)

TRIGGER_ACTIONS = frozenset(
    {"exec", "exec_died", "died", "create", "start", "pause", "unpause", "remove"}
)
"""Podman event actions that make the watcher check at once."""

_IN_MODIFY = 0x002
_IN_ATTRIB = 0x004
_IN_CLOSE_WRITE = 0x008
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_MASK = _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE
_MAX_WATCHES = 4096


class FileWatcher:
    """Inotify watches on folders, read without blocking (Linux only)."""

    def __init__(self) -> None:
        libc_name = ctypes.util.find_library("c") or "libc.so.6"
        self._libc = ctypes.CDLL(libc_name, use_errno=True)
        fd = self._libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            raise OperationalError(
                f"inotify is unavailable: {os.strerror(ctypes.get_errno())}",
                hint="raise fs.inotify.max_user_instances",
                reference="inotify-unavailable",
            )
        self.fd: int = fd
        self.watched: set[str] = set()

    def add_tree(self, top: str) -> None:
        """Watch ``top`` and its sub-folders (bounded); missing ones are skipped."""
        for folder, dirs, _files in os.walk(top, followlinks=False):
            if len(self.watched) >= _MAX_WATCHES:
                return
            dirs.sort()
            if folder in self.watched:
                continue
            wd = self._libc.inotify_add_watch(self.fd, os.fsencode(folder), _MASK)
            if wd >= 0:
                self.watched.add(folder)

    def drain(self) -> int:
        """Read every pending event; return how many bytes were read."""
        total = 0
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                return total
            if not chunk:
                return total
            total += len(chunk)

    def close(self) -> None:
        """Release the inotify instance."""
        with contextlib.suppress(OSError):
            os.close(self.fd)


@dataclass
class WatchStats:
    """What a watch run did."""

    checks: int = 0
    content_checks: int = 0
    events: int = 0
    file_events: int = 0
    reported: int = 0
    failures: int = 0
    seen: set[str] = field(default_factory=set)


def watch(
    session: Session,
    *,
    interval: float,
    report: Callable[[list[Finding], CheckResult], None],
    skip: Callable[[], Iterable[str]] = tuple,
    stop: threading.Event | None = None,
    settle: float = 0.05,
    content_interval: float | None = None,
    checked: Callable[[CheckResult], None] | None = None,
) -> WatchStats:
    """Check on events and on a schedule until stopped.

    Args:
        session: The environment's reconcile session.
        interval: Seconds between scheduled full checks.
        report: Called with the findings not reported before in this run.
        skip: Returns node names not to report (quarantined).
        stop: Set to stop (``SIGTERM``/``SIGINT`` set it too).
        settle: Seconds to let a burst of events settle before checking.
        content_interval: Seconds between full verifications of image
            content on disk (the first at start); ``None`` never verifies it.
        checked: Called after each check that found nothing new to report,
            so that quiet monitoring can leave a trace too.

    Returns:
        Counts of what happened.
    """
    stop = stop or threading.Event()
    stats = WatchStats()
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    previous = _install_signals(stop, wake_write)
    files = FileWatcher()
    events = threading.Thread(
        target=_follow_events,
        args=(session, stop, wake_write, stats),
        name="zerodrift-events",
        daemon=True,
    )
    events.start()
    try:
        schedule = _Schedule(interval, content_interval)
        pending = True
        while not stop.is_set():
            content = schedule.content_due()
            if pending or content or schedule.full_due():
                time.sleep(settle)
                files.drain()
                _drain_pipe(wake_read)
                if not _check_once(
                    session, skip, report, stats, files, content=content, quiet=checked
                ):
                    stop.wait(min(interval, 1.0))
                    pending = True
                    continue
                schedule.done(content=content)
                pending = False
            pending = _wait(files, wake_read, stop, schedule.timeout(), stats)
    finally:
        stop.set()
        _restore_signals(previous)
        files.close()
        os.close(wake_read)
        os.close(wake_write)
    return stats


def _wait(
    files: FileWatcher,
    wake: int,
    stop: threading.Event,
    timeout: float,
    stats: WatchStats,
) -> bool:
    """Wait for file events, runtime events or a signal; whether to check."""
    # The signal's wake-up byte may have been drained before the last
    # check, after the handler set the flag: look at the flag first.
    if stop.is_set():
        return False
    ready, _, _ = select.select([files.fd, wake], [], [], timeout)
    pending = False
    if files.fd in ready:
        stats.file_events += 1
        pending = True
    if wake in ready:
        _drain_pipe(wake)
        pending = not stop.is_set()
    return pending


class _Schedule:
    """When the next full check and the next image-content check are due."""

    def __init__(self, interval: float, content_interval: float | None) -> None:
        self.interval = interval
        self.content_interval = content_interval
        self.next_full = 0.0
        self.next_content = 0.0 if content_interval else float("inf")

    def full_due(self) -> bool:
        return time.monotonic() >= self.next_full

    def content_due(self) -> bool:
        return time.monotonic() >= self.next_content

    def done(self, *, content: bool) -> None:
        """A check finished (with image content or not)."""
        now = time.monotonic()
        self.next_full = now + self.interval
        if content and self.content_interval:
            self.next_content = now + self.content_interval

    def timeout(self) -> float:
        """Seconds until the next scheduled check."""
        return max(0.0, min(self.next_full, self.next_content) - time.monotonic())


def _check_once(
    session: Session,
    skip: Callable[[], Iterable[str]],
    report: Callable[[list[Finding], CheckResult], None],
    stats: WatchStats,
    files: FileWatcher,
    *,
    content: bool = False,
    quiet: Callable[[CheckResult], None] | None = None,
) -> bool:
    """Check once and refresh the file watches; ``False`` when it failed.

    With ``content``, the check also verifies the images' content on disk.
    ``quiet`` is called with the result when there was nothing new to report.
    A failure (the runtime restarting, a node vanishing mid-check) is logged
    and the caller checks again shortly.
    """
    try:
        result = check_environment(session, skip=set(skip()), image_content=content)
        stats.checks += 1
        stats.content_checks += content
        fresh = _fresh(result.findings, stats.seen)
        if fresh:
            stats.reported += len(fresh)
            report(fresh, result)
        elif quiet is not None:
            quiet(result)
        _watch_nodes(session, files)
    except OperationalError as exc:
        stats.failures += 1
        _logger.warning("check failed, retrying: %s", exc.message)
        return False
    return True


def _fresh(findings: list[Finding], seen: set[str]) -> list[Finding]:
    """Findings not reported before in this run (ignoring when found)."""
    fresh = []
    for finding in findings:
        key = canonical_digest(
            {
                "kind": finding.kind,
                "subject": finding.subject,
                "details": finding.details,
            }
        )
        if key not in seen:
            seen.add(key)
            fresh.append(finding)
    return fresh


def _watch_nodes(session: Session, files: FileWatcher) -> None:
    """Add watches on the writable paths of the environment's running nodes."""
    desired = {d.name: d for d in session.desired()}
    for node in session.backend.list_nodes(session.environment):
        if node.state != "running" or not session.owns(node):
            continue
        want = desired.get(node.labels.get(LABEL_SERVICE, ""))
        if want is None:
            continue
        with contextlib.suppress(OperationalError):
            state = session.backend.inspect(node.name).get("State") or {}
            pid = int(state.get("Pid") or 0)
            for root in writable_roots(want.config) if pid else ():
                files.add_tree(f"/proc/{pid}/root{root}")


def _follow_events(
    session: Session, stop: threading.Event, wake: int, stats: WatchStats
) -> None:
    """Wake the loop on relevant podman events; reconnect after failures."""
    since = time.time()
    delay = 0.5
    while not stop.is_set():
        try:
            for event in session.backend.events(since=since):
                since = max(since, event.time)
                delay = 0.5
                if stop.is_set():
                    return
                if event.action in TRIGGER_ACTIONS:
                    stats.events += 1
                    with contextlib.suppress(OSError):
                        os.write(wake, b"e")
        except (OperationalError, OSError, ValueError) as exc:
            _logger.info("podman event stream ended (%s); reconnecting", exc)
        stop.wait(delay)
        delay = min(delay * 2, 10.0)


def _drain_pipe(fd: int) -> None:
    with contextlib.suppress(BlockingIOError, OSError):
        while os.read(fd, 4096):
            pass


def _install_signals(stop: threading.Event, wake: int) -> dict[int, Any]:
    """Make SIGTERM and SIGINT stop the loop (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(_signum: int, _frame: object) -> None:
        stop.set()

    previous: dict[int, Any] = {
        signum: signal.signal(signum, handler)
        for signum in (signal.SIGTERM, signal.SIGINT)
    }
    # The kernel may deliver the signal to the event thread; the wake-up fd
    # makes the main thread's select return so the handler runs at once.
    previous[0] = signal.set_wakeup_fd(wake, warn_on_full_buffer=False)
    return previous


def _restore_signals(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        if signum == 0:
            signal.set_wakeup_fd(handler)
        else:
            signal.signal(signum, handler)
