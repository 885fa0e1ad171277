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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from zerodrift.detect.fim.entry import (
    Entry,
    decode_entry,
    encode_entry,
    fingerprint,
    stat_fingerprint,
    stat_tail,
    unescape,
)
from zerodrift.detect.fim.rules import ATTRIBUTES, Rule, RuleSet
from zerodrift.detect.fim.scanner import VANISHED, Pipeline, WalkItem
from zerodrift.detect.findings import Severity

__all__ = [
    "BUCKETS",
    "Change",
    "CheckStats",
    "compare",
    "judge",
    "sampled",
]

BUCKETS = 256
"""The sample space of the fast mode: each baseline entry falls in one
bucket, its line number modulo ``BUCKETS`` (see VerifiedBaseline.sample)."""

_DIR_SKIP = frozenset({"size", "mtime", "ctime", "nlink"})
_IDENTITY = ("inode", "size", "mtime", "ctime")


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


Item = tuple[bytes | None, WalkItem | None]


def compare(
    baseline: Iterator[bytes],
    live: Iterator[WalkItem],
    rules: RuleSet,
    *,
    full: bool,
    pipeline: Pipeline[Item],
    stats: CheckStats,
) -> Iterator[Change]:
    """Yield every change between ``baseline`` lines and ``live``, in walk order.

    In the fast mode a path whose ``lstat`` fingerprint matches its line is
    skipped here (its content is verified when its line is sampled, see
    :func:`sampled`). Every other path goes to a worker,
    whose complete new line is compared byte for byte with the baseline
    line; only lines that differ are decoded and compared attribute by
    attribute.
    """
    unlisted: list[bytes] = []
    for line, item in _merge(baseline, live):
        task = None
        if item is not None:
            if item.hidden:  # another share's folder, unlisted: see WalkItem
                unlisted.append(item.path + b"/")
                continue
            stats.scanned += 1
            if not full and line is not None and _unchanged(line, item):
                continue
            task = None if item.failed else item.path
        for (old, new), result in pipeline.push((line, item), task):
            yield from _judge(
                old, new, result, rules=rules, unlisted=unlisted, stats=stats
            )
    for (old, new), result in pipeline.finish():
        yield from _judge(old, new, result, rules=rules, unlisted=unlisted, stats=stats)


def _unchanged(line: bytes, item: WalkItem) -> bool:
    # The fast mode's test, done here because it needs one lstat and most
    # paths pass it: the line (whose path is the item's, as the merge
    # paired them) goes on with the same type, mode, owner, size, inode,
    # link count and times.
    entry = item.entry
    if entry is not None:
        return entry.error is None and line.startswith(fingerprint(entry))
    try:
        st = os.lstat(item.path)
    except OSError:
        return False
    return line.startswith(stat_tail(st), line.index(b"\t") + 1)


def sampled(
    baseline: Iterator[bytes],
    rules: RuleSet,
    *,
    skip: set[bytes],
    pipeline: Pipeline[Item],
    stats: CheckStats,
) -> Iterator[Change]:
    """Rehash the files of ``baseline`` lines (this run's sample); yield changes.

    The fast mode's second pass: the first compared ``lstat`` data only,
    so this one verifies content behind unchanged metadata. Entries whose
    ``lstat`` data moved (or that are gone) are the first pass's findings
    and are left alone here, as are paths in ``skip``.
    """
    unlisted: list[bytes] = []
    for line in baseline:
        raw = line[: line.index(b"\t")]
        path = unescape(raw) if b"\\" in raw else raw
        if path in skip:
            continue
        try:
            st = os.lstat(path)
        except OSError:
            continue
        stats.sampled += 1
        found = rules.lookup(path)
        if found is None or not line.startswith(stat_fingerprint(path, st)):
            continue
        item = WalkItem(path, found[0])
        for (old, new), result in pipeline.push((line, item), path):
            yield from _judge(
                old, new, result, rules=rules, unlisted=unlisted, stats=stats
            )
    for (old, new), result in pipeline.finish():
        yield from _judge(old, new, result, rules=rules, unlisted=unlisted, stats=stats)


def _key(raw: bytes) -> bytes:
    # sort_key of a line's escaped path, inlined: it runs for many lines.
    if b"\\" in raw:
        raw = unescape(raw)
    return raw.replace(b"/", b"\x00")


def _merge(baseline: Iterator[bytes], live: Iterator[WalkItem]) -> Iterator[Item]:
    # Pairs lines and walked paths by sort key. Most pairs hold the same
    # path, which a byte comparison of the line's path settles; keys are
    # built only when the paths differ.
    line = next(baseline, None)
    item = next(live, None)
    while line is not None and item is not None:
        raw = line[: line.index(b"\t")]
        if raw != item.path:
            line_key = _key(raw)
            item_key = item.path.replace(b"/", b"\x00")
            if line_key < item_key:
                yield line, None
                line = next(baseline, None)
                continue
            if item_key < line_key:
                yield None, item
                item = next(live, None)
                continue
        yield line, item
        line, item = next(baseline, None), next(live, None)
    while line is not None:
        yield line, None
        line = next(baseline, None)
    while item is not None:
        yield None, item
        item = next(live, None)


def _judge(
    line: bytes | None,
    item: WalkItem | None,
    result: bytes | None,
    *,
    rules: RuleSet,
    unlisted: list[bytes],
    stats: CheckStats,
) -> Iterator[Change]:
    if item is not None and item.failed and item.entry is not None:
        result = encode_entry(item.entry)
    if item is None or result == VANISHED:
        if line is not None:
            yield _gone(decode_entry(line), rules, unlisted)
        return
    if result is None:
        return
    stats.hashed += result.startswith(b"\tfile\t", result.index(b"\t"))
    if result == line:
        return
    live = decode_entry(result)
    yield from judge(
        decode_entry(line) if line is not None else None,
        live,
        item.rule,
        unlisted=unlisted,
        stats=stats,
        xattr_names=rules.xattr_names,
    )


def judge(
    base: Entry | None,
    live: Entry,
    rule: Rule,
    *,
    unlisted: list[bytes],
    stats: CheckStats,
    xattr_names: tuple[str, ...] | None = None,
) -> Iterator[Change]:
    """Decide what one differing baseline/live pair means."""
    if live.type == "dir" and live.error:
        unlisted.append(live.path + b"/")
    if base is None:
        yield Change(live.path, "added", rule.severity, rule.path, _added(live))
        return
    if live.error and base.hash is not None and live.hash is None:
        stats.unverified.append((live.display, live.error))
        yield Change(
            live.path, "unverifiable", rule.severity, rule.path, reason=live.error
        )
        return
    diff = differences(base, live, rule.attributes, xattr_names)
    if diff:
        yield Change(live.path, "changed", rule.severity, rule.path, diff)


def differences(
    base: Entry,
    live: Entry,
    attributes: frozenset[str],
    xattr_names: tuple[str, ...] | None = None,
) -> dict[str, tuple[Any, Any]]:
    """Attributes that differ, among those compared and recorded in ``base``.

    With ``xattr_names``, only those extended attributes are compared (a
    golden manifest records only file capabilities and IMA/EVM data).
    """
    skip = _DIR_SKIP if live.type == "dir" == base.type else frozenset()
    diff: dict[str, tuple[Any, Any]] = {}
    for name in ATTRIBUTES:
        if name not in attributes or name in skip:
            continue
        old = getattr(base, name)
        if old is None:
            continue
        new = getattr(live, name)
        if name == "xattrs" and xattr_names is not None:
            old = {k: v for k, v in old.items() if k in xattr_names}
            new = {k: v for k, v in (new or {}).items() if k in xattr_names}
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
    removed: dict[str, tuple[Any, Any]] = {"type": (base.type, None)}
    if base.hash:
        removed["hash"] = (base.hash, None)
    return Change(base.path, "removed", severity, rule_path, removed)


def observe_all(
    live: Iterator[WalkItem],
    pipeline: Pipeline[WalkItem],
    sink: Callable[[bytes], None],
    stats: CheckStats,
) -> None:
    """Observe every walked path completely; pass each line to ``sink``."""
    for item in live:
        stats.scanned += 1
        task = None if item.failed else item.path
        for done, line in pipeline.push(item, task):
            _record(done, line, sink, stats)
    for done, line in pipeline.finish():
        _record(done, line, sink, stats)


def _record(
    item: WalkItem,
    line: bytes | None,
    sink: Callable[[bytes], None],
    stats: CheckStats,
) -> None:
    if item.failed and item.entry is not None:
        stats.unverified.append((item.entry.display, str(item.entry.error)))
        sink(encode_entry(item.entry))
        return
    if not line:
        return
    stats.hashed += line.startswith(b"\tfile\t", line.index(b"\t"))
    sink(line)
