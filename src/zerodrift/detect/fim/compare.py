"""Comparing a verified baseline with the live tree by a merge walk.

Both the baseline and the walk are in the same order
(:func:`~zerodrift.detect.fim.rules.sort_key`), so one pass over two
streams pairs every baseline entry with its live counterpart: memory holds
only the batches in flight and the changes found, whatever the tree's size.

In the fast mode a regular file is rehashed only when its inode, size,
mtime or ctime moved, or when it falls in this run's sample buckets; its
extended attributes are re-read only when its ctime moved (setting an
attribute always moves ctime). ``--full`` rehashes and re-reads everything.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from zerodrift.detect.fim.rules import ATTRIBUTES, RuleSet, sort_key
from zerodrift.detect.fim.scanner import (
    Deep,
    Entry,
    Pipeline,
    WalkItem,
    complete,
    task_for,
)
from zerodrift.detect.findings import Severity

__all__ = ["BUCKETS", "Change", "CheckStats", "compare", "judge", "sample_bucket"]

BUCKETS = 256
"""The sample space of the fast mode: each path falls in one bucket."""

_DIR_SKIP = frozenset({"size", "mtime", "ctime", "nlink"})
_IDENTITY = ("inode", "size", "mtime", "ctime")


def sample_bucket(path: bytes) -> int:
    """The sample bucket of ``path`` (stable across runs and hosts)."""
    return zlib.crc32(path) % BUCKETS


@dataclass(frozen=True)
class Change:
    """One difference between the baseline and the live tree.

    Attributes:
        path: The path, as bytes.
        kind: added, removed, changed or unverifiable.
        severity: From the governing rule.
        rule: The governing rule's path.
        attributes: Changed attributes: name to (baseline value, live value).
        reason: Why a path could not be verified (unverifiable only).
    """

    path: bytes
    kind: str
    severity: Severity
    rule: str
    attributes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    reason: str | None = None

    @property
    def display(self) -> str:
        """The path for people (undecodable bytes escaped)."""
        return self.path.decode("utf-8", "backslashreplace")

    def to_dict(self) -> dict[str, Any]:
        """Render as JSON-ready data (values as in :func:`render_value`)."""
        return {
            "path": os.fsdecode(self.path),
            "kind": self.kind,
            "severity": self.severity.label,
            "rule": self.rule,
            "attributes": {
                name: {"old": render_value(name, old), "new": render_value(name, new)}
                for name, (old, new) in self.attributes.items()
            },
            **({"reason": self.reason} if self.reason else {}),
        }


def render_value(name: str, value: Any) -> Any:
    """Show modes in octal and times as ISO 8601; the rest unchanged."""
    if value is None:
        return None
    if name == "mode":
        return f"{value:04o}"
    if name in ("mtime", "ctime"):
        moment = datetime.fromtimestamp(value / 1e9, UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + f"{value % 1000:03d}Z"
    if name == "rdev":
        return f"{value[0]}:{value[1]}"
    return value


@dataclass
class CheckStats:
    """Counters of one comparison run."""

    scanned: int = 0
    hashed: int = 0
    sampled: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    unverified: list[tuple[str, str]] = field(default_factory=list)


Pair = tuple[Entry | None, WalkItem | None]


def compare(
    baseline: Iterator[Entry],
    live: Iterator[WalkItem],
    rules: RuleSet,
    *,
    full: bool,
    sample: frozenset[int],
    pipeline: Pipeline[Pair],
    stats: CheckStats,
) -> Iterator[Change]:
    """Yield every change between ``baseline`` and ``live``, in walk order."""
    unlisted: list[bytes] = []
    for base, item in _merge(baseline, live):
        task = None
        if item is not None:
            stats.scanned += 1
            task = _plan(base, item.entry, full, sample, stats)
        for (old, new), deep in pipeline.push((base, item), task):
            yield from judge(
                old, new, deep, rules=rules, unlisted=unlisted, stats=stats
            )
    for (old, new), deep in pipeline.finish():
        yield from judge(old, new, deep, rules=rules, unlisted=unlisted, stats=stats)


def _merge(baseline: Iterator[Entry], live: Iterator[WalkItem]) -> Iterator[Pair]:
    base = next(baseline, None)
    item = next(live, None)
    base_key = sort_key(base.path) if base else b""
    item_key = sort_key(item.entry.path) if item else b""
    while base is not None or item is not None:
        if item is None or (base is not None and base_key < item_key):
            yield base, None
            base = next(baseline, None)
            base_key = sort_key(base.path) if base else b""
        elif base is None or item_key < base_key:
            yield None, item
            item = next(live, None)
            item_key = sort_key(item.entry.path) if item else b""
        else:
            yield base, item
            base, item = next(baseline, None), next(live, None)
            base_key = sort_key(base.path) if base else b""
            item_key = sort_key(item.entry.path) if item else b""


def _plan(
    base: Entry | None,
    live: Entry,
    full: bool,
    sample: frozenset[int],
    stats: CheckStats,
) -> tuple[bytes, str, bool] | None:
    if full or base is None or base.type != live.type:
        return task_for(live, True)
    moved = any(
        getattr(base, name) is None or getattr(base, name) != getattr(live, name)
        for name in _IDENTITY
        if not (live.type == "dir" and name in ("size", "mtime"))
    )
    if live.type == "file" and not moved and sample_bucket(live.path) in sample:
        stats.sampled += 1
        return task_for(live, True)
    if moved:
        return task_for(live, True)
    # Unchanged identity: the content and attributes are taken as recorded.
    live.hash, live.xattrs = base.hash, base.xattrs
    return None


def judge(
    base: Entry | None,
    item: WalkItem | None,
    deep: Deep | None,
    *,
    rules: RuleSet,
    unlisted: list[bytes],
    stats: CheckStats,
) -> Iterator[Change]:
    """Decide what one baseline/live pair means."""
    if item is None or (deep is not None and deep.vanished):
        if base is not None:
            yield _gone(base, rules, unlisted)
        return
    live = item.entry
    if deep is not None and deep.hash is not None:
        stats.hashed += 1
    complete(live, deep)
    if live.type == "dir" and live.error:
        unlisted.append(live.path + b"/")
    rule = item.rule
    if base is None:
        yield Change(live.path, "added", rule.severity, rule.path, _added(live))
        return
    if live.error and base.hash is not None and live.hash is None:
        stats.unverified.append((live.display, live.error))
        yield Change(
            live.path, "unverifiable", rule.severity, rule.path, reason=live.error
        )
        return
    diff = differences(base, live, rule.attributes)
    if diff:
        yield Change(live.path, "changed", rule.severity, rule.path, diff)


def differences(
    base: Entry, live: Entry, attributes: frozenset[str]
) -> dict[str, tuple[Any, Any]]:
    """Attributes that differ, among those compared and recorded in ``base``."""
    skip = _DIR_SKIP if live.type == "dir" == base.type else frozenset()
    diff: dict[str, tuple[Any, Any]] = {}
    for name in ATTRIBUTES:
        if name not in attributes or name in skip:
            continue
        old = getattr(base, name)
        if old is None:
            continue
        new = getattr(live, name)
        if old != new:
            diff[name] = (old, new)
    return diff


def _added(live: Entry) -> dict[str, tuple[Any, Any]]:
    shown = ("type", "mode", "uid", "gid", "size", "hash", "target")
    return {
        name: (None, getattr(live, name))
        for name in shown
        if getattr(live, name) is not None
    }


def _gone(base: Entry, rules: RuleSet, unlisted: list[bytes]) -> Change:
    found = rules.lookup(base.path)
    severity, rule_path = (
        (found[0].severity, found[0].path) if found else (Severity.MEDIUM, "-")
    )
    for prefix in unlisted:
        if base.path.startswith(prefix):
            return Change(
                base.path,
                "unverifiable",
                severity,
                rule_path,
                reason="its folder could not be listed",
            )
    return Change(
        base.path,
        "removed",
        severity,
        rule_path,
        {"type": (base.type, None), "hash": (base.hash, None)}
        if base.hash
        else {"type": (base.type, None)},
    )


def observe_all(
    live: Iterator[WalkItem],
    pipeline: Pipeline[WalkItem],
    sink: Callable[[Entry], None],
    stats: CheckStats,
) -> None:
    """Observe every walked entry completely (for a new baseline)."""
    for item in live:
        stats.scanned += 1
        for done, deep in pipeline.push(item, task_for(item.entry, True)):
            _record(done, deep, sink, stats)
    for done, deep in pipeline.finish():
        _record(done, deep, sink, stats)


def _record(
    item: WalkItem, deep: Deep | None, sink: Callable[[Entry], None], stats: CheckStats
) -> None:
    if deep is not None and deep.vanished:
        return
    if deep is not None and deep.hash is not None:
        stats.hashed += 1
    complete(item.entry, deep)
    if item.entry.error:
        stats.unverified.append((item.entry.display, item.entry.error))
    sink(item.entry)
