"""Host FIM workflows: create, check and update a signed baseline.

Each workflow is a short orchestrator over the pure parts (rules, compare)
and the IO edges (scanner, baseline file, state database):

- :func:`create_baseline` walks the rules' paths and writes a signed
  baseline; :func:`create_from_manifest` does the same from an image's
  golden manifest, so a host built from an image needs no first scan.
- :func:`run_check` compares a verified baseline with the live tree.
- :func:`accept_changes` re-observes explicitly accepted paths and writes
  a new signed baseline; nothing else moves.

The state database remembers which baseline is current for each file, so
a validly signed but older or foreign baseline put in its place is refused
(:func:`verify_current`).
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerodrift.detect.fim.baseline import BaselineWriter, VerifiedBaseline
from zerodrift.detect.fim.compare import (
    BUCKETS,
    Change,
    CheckStats,
    compare,
    observe_all,
    sampled,
)
from zerodrift.detect.fim.entry import decode_entry
from zerodrift.detect.fim.rules import RuleSet, sort_key
from zerodrift.detect.fim.scanner import Entry, Pipeline, Span, observe_path, walk
from zerodrift.detect.findings import Finding
from zerodrift.errors import IntegrityError
from zerodrift.state.times import utc_now

# The database layer (SQLAlchemy) is imported where it is used: a fast
# check starts its workers first and loads it while they walk (ADR 0044).
if TYPE_CHECKING:
    from securesystemslib.signer import Signer

    from zerodrift.state import Database

__all__ = [
    "CSF",
    "CSF_1_1",
    "CheckReport",
    "accept_changes",
    "create_baseline",
    "record_baseline",
    "run_check",
    "to_findings",
    "verify_current",
]

CSF = ("DE.CM-09",)
"""CSF 2.0: computing hardware and software are monitored."""

CSF_1_1 = {"DE.CM-09": ("PR.DS-6",)}
"""CSF 2.0 to 1.1 through NIST's crosswalk (integrity checking mechanisms)."""


@dataclass
class CheckReport:
    """What one check found, and how it ran."""

    mode: str
    baseline: str
    started_at: str
    seconds: float
    stats: CheckStats
    changes: list[Change] = field(default_factory=list)
    sample: tuple[int, int] = (0, 0)

    def counts(self) -> dict[str, int]:
        """Number of changes per kind."""
        counts = {"added": 0, "removed": 0, "changed": 0, "unverifiable": 0}
        for change in self.changes:
            counts[change.kind] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        """Render as JSON-ready data (``fim update --from-report`` reads it)."""
        return {
            "mode": self.mode,
            "baseline": self.baseline,
            "started_at": self.started_at,
            "seconds": round(self.seconds, 3),
            "scanned": self.stats.scanned,
            "hashed": self.stats.hashed,
            "sampled": self.stats.sampled,
            "sample_buckets": {"from": self.sample[0], "to": self.sample[1]},
            "counts": self.counts(),
            "changes": [c.to_dict() for c in self.changes],
            "skipped": [{"path": p, "reason": r} for p, r in self.stats.skipped],
        }


def create_baseline(
    path: Path,
    rules: RuleSet,
    signer: Signer,
    *,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, Any], CheckStats]:
    """Walk the rules' paths and write a signed baseline at ``path``.

    ``progress``, if given, is called with the number of entries written
    every 10,000 entries.

    Raises:
        OperationalError: The baseline cannot be written (the old one stays).
    """
    stats = CheckStats()
    pipeline: Pipeline[Any] = Pipeline(rules.algorithm, workers)
    with BaselineWriter(path, rules, "scan") as writer, pipeline:

        def add(line: bytes) -> None:
            writer.add_line(line)
            if progress is not None and writer.count % 10_000 == 0:
                progress(writer.count)

        observe_all(walk(rules, on_skip=_skipper(stats)), pipeline, add, stats)
        statement = writer.sign(signer, created_at=utc_now())
    return statement, stats


def write_entries(
    path: Path,
    rules: RuleSet,
    entries: Iterable[Entry],
    signer: Signer,
    source: str,
) -> dict[str, Any]:
    """Write already sorted ``entries`` as a signed baseline.

    Raises:
        OperationalError: The baseline cannot be written (the old one stays).
    """
    with BaselineWriter(path, rules, source) as writer:
        for entry in entries:
            writer.add(entry)
        return writer.sign(signer, created_at=utc_now())


def record_baseline(db: Database, path: Path, statement: dict[str, Any]) -> str:
    """Remember ``path``'s current baseline; return its file digest."""
    from zerodrift.detect.fim.baseline import _digest_prefix
    from zerodrift.state.schema import fim_baselines

    with path.open("rb") as handle:
        _, digest = _digest_prefix(handle, 0)
    with db.write(lock="fim") as conn:
        conn.execute(
            fim_baselines.insert().values(
                path=str(path.resolve()),
                digest=digest,
                created_at=statement["created_at"],
                hostname=statement["host"]["hostname"],
                entries=statement["entries"],
                algorithm=statement["algorithm"],
                source=statement["source"],
            )
        )
    return digest


def last_recorded(db: Database, path: Path) -> tuple[str, str] | None:
    """Digest and time of the baseline this project recorded last at ``path``."""
    from sqlalchemy import select

    from zerodrift.state.schema import fim_baselines

    query = (
        select(fim_baselines.c.digest, fim_baselines.c.created_at)
        .where(fim_baselines.c.path == str(path.resolve()))
        .order_by(fim_baselines.c.id.desc())
        .limit(1)
    )
    with db.read() as conn:
        row = conn.execute(query).first()
    return None if row is None else (row.digest, row.created_at)


def verify_current(db: Database, baseline: VerifiedBaseline) -> None:
    """Check that ``baseline`` is the one this project recorded last.

    Raises:
        IntegrityError: It was replaced by another (even validly signed) one.
    """
    row = last_recorded(db, baseline.path)
    if row is None:
        raise IntegrityError(
            f"baseline {baseline.path} is signed, but this project never recorded it",
            hint="a baseline is only valid where 'zerodrift fim init' or "
            "'fim update' wrote it; re-create it here",
            reference="fim-baseline-replaced",
        )
    digest, created_at = row
    if digest != baseline.digest:
        raise IntegrityError(
            f"baseline {baseline.path} is not the one recorded last "
            f"(expected {digest[:19]}… from {created_at}, "
            f"found {baseline.digest[:19]}…)",
            hint="an older or foreign baseline was put in its place; restore the "
            "current one or re-create it",
            reference="fim-baseline-replaced",
        )


def run_check(
    db: Database | Callable[[], Database],
    baseline: VerifiedBaseline,
    *,
    full: bool,
    workers: int | None = None,
    now: datetime | None = None,
    verify: bool = False,
) -> CheckReport:
    """Compare ``baseline`` with the live tree and record the run.

    The fast mode runs in two passes, in worker processes that each take a
    share of the baseline (see :meth:`VerifiedBaseline.split`): the
    metadata pass compares every path's ``lstat`` data with its line (and
    rehashes what moved); the sample pass then rehashes the unchanged
    files of this run's sample buckets. ``db`` may be a function
    that opens the database: it is called once the metadata pass is under
    way, so loading the database layer overlaps with the walk.

    Raises:
        IntegrityError: With ``verify``, the baseline is not the one
            recorded last (see :func:`verify_current`); nothing is recorded.
    """
    started = utc_now()
    clock = time.perf_counter()
    rules = baseline.rules
    count = workers or os.cpu_count() or 1
    opened = db if callable(db) else (lambda: db)
    moment = now or datetime.now(UTC)
    if full:
        database = opened()
        if verify:
            verify_current(database, baseline)
        position, end = _sample_window(database, baseline, moment, full=True)
        stats, changes = _check_part(baseline, rules, full=True, workers=workers)
    else:
        with _fast_shares(baseline, rules, count) as finish:
            database = opened()
            if verify:
                verify_current(database, baseline)
            position, end = _sample_window(database, baseline, moment, full=False)
            stats, changes = finish(
                frozenset(p % BUCKETS for p in range(position + 1, end + 1))
            )
    report = CheckReport(
        "full" if full else "fast",
        baseline.digest,
        started,
        time.perf_counter() - clock,
        stats,
        changes,
        (position + 1, end),
    )
    _record_run(database, report, end)
    return report


def _check_part(
    baseline: VerifiedBaseline,
    rules: RuleSet,
    *,
    full: bool,
    workers: int | None,
    share: Share = (0, None, (None, None)),
) -> tuple[CheckStats, list[Change]]:
    stats = CheckStats()
    start, stop, span = share
    pipeline: Pipeline[Any] = Pipeline(rules.algorithm, workers)
    with pipeline:
        changes = list(
            compare(
                baseline.lines(start, stop),
                walk(rules, on_skip=_skipper(stats), span=span),
                rules,
                full=full,
                pipeline=pipeline,
                stats=stats,
            )
        )
    return stats, changes


Share = tuple[int, int | None, Span]
"""One share of a fast check: baseline offsets (start, stop) and the span
of sort keys their lines hold (see VerifiedBaseline.split)."""


def _shares(baseline: VerifiedBaseline, count: int) -> list[Share]:
    cuts = baseline.split(count)
    offsets = [0, *(at for at, _ in cuts), None]
    keys = [None, *(key for _, key in cuts), None]
    return [
        (offsets[i] or 0, offsets[i + 1], (keys[i], keys[i + 1]))
        for i in range(len(cuts) + 1)
    ]


def _fast_share(
    baseline: VerifiedBaseline,
    rules: RuleSet,
    share: Share,
    sample: Callable[[], frozenset[int] | None],
) -> tuple[CheckStats, list[Change]]:
    # Both passes of one share: lstat data first, then, once the sample
    # buckets are known, the sampled files that pass left alone.
    stats, changes = _check_part(baseline, rules, full=False, workers=1, share=share)
    buckets = sample()
    if buckets:
        _sample_pass(baseline, buckets, stats, changes, share)
    return stats, changes


# The fast mode's shares run in forked processes that inherit this state,
# so nothing large is pickled; each share re-reads and re-verifies the
# baseline's digest as it streams it, and takes its sample buckets from
# the queue once the main process has read them from the database.
_shared: tuple[VerifiedBaseline, RuleSet, list[Share], Any] | None = None


def _run_share(index: int) -> tuple[CheckStats, list[Change]]:
    if _shared is None:
        raise RuntimeError("no shared check state in this worker")
    baseline, rules, shares, inbox = _shared
    return _fast_share(baseline, rules, shares[index], inbox.get)


@contextlib.contextmanager
def _fast_shares(
    baseline: VerifiedBaseline, rules: RuleSet, count: int
) -> Iterator[Callable[[frozenset[int]], tuple[CheckStats, list[Change]]]]:
    """Start a fast check; yield a function from sample buckets to the result.

    With more than one process, the baseline is cut into shares of about
    the same number of entries (:meth:`VerifiedBaseline.split`), each
    checked by a forked process against the walk of the same span of the
    tree; the processes start at once and wait for the sample buckets
    after their metadata pass. Leaving the block, even with an error, lets
    them finish and end on their own: stopping them with signals
    (``Pool.terminate``) was seen to leave a worker blocked for ever; only
    an interrupt stops them at once.
    """
    shares = _shares(baseline, count) if count > 1 else []
    if len(shares) < 2:
        yield lambda sample: _fast_share(
            baseline, rules, (0, None, (None, None)), lambda: sample
        )
        return
    global _shared  # noqa: PLW0603 - handed to forked workers, then cleared
    context = multiprocessing.get_context("fork")
    inbox = context.SimpleQueue()
    _shared = (baseline, rules, shares, inbox)
    gc.freeze()  # see Pipeline: forked workers then share the parent's pages
    pool = context.Pool(len(shares))
    sent = False

    def finish(sample: frozenset[int]) -> tuple[CheckStats, list[Change]]:
        nonlocal sent
        for _ in shares:
            inbox.put(sample)
        sent = True
        return _merge_shares(pending.get())

    try:
        pending = pool.map_async(_run_share, range(len(shares)))
        try:
            yield finish
        finally:
            if not sent:
                for _ in shares:
                    inbox.put(None)  # no sample pass: the check stopped
            pending.wait()
            pool.close()
            pool.join()
    except KeyboardInterrupt:
        pool.terminate()
        raise
    finally:
        _shared = None
        gc.unfreeze()
        inbox.close()


def _merge_shares(
    shares: list[tuple[CheckStats, list[Change]]],
) -> tuple[CheckStats, list[Change]]:
    stats = CheckStats()
    changes: list[Change] = []
    for share_stats, share_changes in shares:
        stats.scanned += share_stats.scanned
        stats.hashed += share_stats.hashed
        stats.sampled += share_stats.sampled
        stats.skipped += share_stats.skipped
        stats.unverified += share_stats.unverified
        changes += share_changes
    changes.sort(key=lambda c: sort_key(c.path))
    return stats, changes


def _sample_pass(
    baseline: VerifiedBaseline,
    sample: frozenset[int],
    stats: CheckStats,
    changes: list[Change],
    share: Share,
) -> None:
    """Rehash the sampled files the metadata pass left alone; add to both."""
    rules = baseline.rules
    start, stop, _ = share
    seen = {change.path for change in changes}
    pipeline: Pipeline[Any] = Pipeline(rules.algorithm, 1)
    with pipeline:
        found = list(
            sampled(
                baseline.sample(sample, BUCKETS, start, stop),
                rules,
                skip=seen,
                pipeline=pipeline,
                stats=stats,
            )
        )
    if found:
        changes += found
        changes.sort(key=lambda c: sort_key(c.path))


def _sample_window(
    db: Database, baseline: VerifiedBaseline, now: datetime, *, full: bool
) -> tuple[int, int]:
    from sqlalchemy import select

    from zerodrift.state.schema import fim_runs

    query = (
        select(fim_runs.c.sample_position)
        .where(fim_runs.c.baseline_digest == baseline.digest)
        .order_by(fim_runs.c.id.desc())
        .limit(1)
    )
    with db.read() as conn:
        last = conn.execute(query).scalar() or 0
    created = datetime.strptime(
        baseline.statement["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ"
    ).replace(tzinfo=UTC)
    period = baseline.rules.sample_period
    due = int((now - created).total_seconds() / period * BUCKETS)
    # Bucket positions advance with time: BUCKETS per sample period. A fast
    # run verifies the buckets from the last position up to the one due now
    # (at least one), so each bucket is revisited within one period. A full
    # run verifies everything and so only moves the position to "now".
    if full:
        return last, max(due, last)
    return last, min(max(due, last + 1), last + BUCKETS)


def _record_run(db: Database, report: CheckReport, position: int) -> None:
    from zerodrift.state.schema import fim_runs

    with db.write(lock="fim") as conn:
        conn.execute(
            fim_runs.insert().values(
                baseline_digest=report.baseline,
                started_at=report.started_at,
                finished_at=utc_now(),
                mode=report.mode,
                sample_position=position,
                scanned=report.stats.scanned,
                hashed=report.stats.hashed,
                changes=len(report.changes),
            )
        )


def to_findings(report: CheckReport, host: str) -> list[Finding]:
    """One finding per change of a check report."""
    return findings_for(report.changes, host, report.mode, report.baseline)


def findings_for(
    changes: Iterable[Change], host: str, mode: str, baseline: str
) -> list[Finding]:
    """One finding per change, tagged for CSF 2.0 (and 1.1 in details)."""
    found_at = utc_now()
    findings = []
    for change in changes:
        names = ", ".join(change.attributes) if change.kind == "changed" else ""
        summary = f"{change.kind} {change.display}" + (f" ({names})" if names else "")
        findings.append(
            Finding(
                source="fim",
                kind=f"file-{change.kind}",
                severity=change.severity,
                subject=f"{host}:{change.display}",
                summary=summary,
                found_at=found_at,
                details={
                    **_printable(change.to_dict()),
                    "mode": mode,
                    "baseline": baseline,
                    "csf_1_1": [s for c in CSF for s in CSF_1_1[c]],
                },
                csf=CSF,
            )
        )
    return findings


def _printable(value: Any) -> Any:
    # Findings are stored as canonical JSON, which needs valid UTF-8: bytes
    # of names that are not UTF-8 are shown as escapes there.
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode(
            "utf-8", "backslashreplace"
        )
    if isinstance(value, dict):
        return {k: _printable(v) for k, v in value.items()}
    return value


def accept_changes(
    baseline: VerifiedBaseline,
    accepted: Iterable[bytes],
    signer: Signer,
    *,
    expect: Callable[[Entry | None], None] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Write a new baseline where ``accepted`` paths take their live state.

    A folder's whole subtree is accepted with it. ``expect``, if given, is
    called with each re-observed entry (None: gone) before it is accepted,
    and may raise to refuse one that moved on since it was reviewed.

    Returns:
        The new signed statement and the accepted paths (display form).

    Raises:
        OperationalError: The new baseline cannot be written.
    """
    rules = baseline.rules
    roots = sorted({p.rstrip(b"/") or b"/" for p in accepted}, key=sort_key)
    fresh = sorted(
        _observe_accepted(roots, rules, expect), key=lambda e: sort_key(e.path)
    )
    merged = _merge_accepted(baseline.entries(), fresh, roots)
    statement = write_entries(
        baseline.path, rules, merged, signer, baseline.statement["source"]
    )
    return statement, [r.decode("utf-8", "backslashreplace") for r in roots]


def _observe_accepted(
    roots: list[bytes],
    rules: RuleSet,
    expect: Callable[[Entry | None], None] | None,
) -> Iterator[Entry]:
    for root in roots:
        if rules.lookup(root) is None:
            continue
        entry = observe_path(root, rules.algorithm)
        if expect is not None:
            expect(entry if entry is not None else Entry(root, "absent"))
        if entry is None:
            continue
        if entry.type != "dir":
            yield entry
            continue
        collected: list[bytes] = []
        pipeline: Pipeline[Any] = Pipeline(rules.algorithm, 1)
        with pipeline:
            observe_all(
                walk(rules, roots=[root]), pipeline, collected.append, CheckStats()
            )
        yield from (decode_entry(line) for line in collected)


def _inside(path: bytes, root: bytes) -> bool:
    return path == root or path.startswith(root.rstrip(b"/") + b"/")


def _merge_accepted(
    old: Iterator[Entry], fresh: list[Entry], roots: list[bytes]
) -> Iterator[Entry]:
    pending = iter(fresh)
    nxt = next(pending, None)
    for entry in old:
        key = sort_key(entry.path)
        while nxt is not None and sort_key(nxt.path) < key:
            yield nxt
            nxt = next(pending, None)
        if nxt is not None and nxt.path == entry.path:
            yield nxt
            nxt = next(pending, None)
            continue
        if any(_inside(entry.path, r) for r in roots):
            continue
        yield entry
    while nxt is not None:
        yield nxt
        nxt = next(pending, None)


def _skipper(stats: CheckStats) -> Callable[[bytes, str], None]:
    def note(path: bytes, reason: str) -> None:
        stats.skipped.append((path.decode("utf-8", "backslashreplace"), reason))

    return note


def machine_name() -> str:
    """This host's name, for finding subjects."""
    return os.uname().nodename
