"""Several OS processes append to one audit trail at once, on both engines.

Threads would share one interpreter and one connection pool; separate
processes are what really happens when two CI jobs or a watcher and an
operator write at the same time.
"""

from __future__ import annotations

import itertools
import multiprocessing
import time
from collections import Counter

import pytest

from zerodrift.govern.audit import AuditTrail
from zerodrift.state import Database

WRITERS = 4
APPENDS = 25


def _writer(url: str, writer: int, start: multiprocessing.synchronize.Event) -> None:
    db = Database.open(url)
    trail = AuditTrail(db, actor=f"writer-{writer}")
    start.wait(timeout=60)
    for n in range(APPENDS):
        trail.append("test.append", f"writer-{writer}", {"n": n})
        # A pause between appends, like real work, lets the others in: SQLite's
        # busy handler sleeps, so a tight loop would keep the lock to itself.
        time.sleep(0.01)
    db.close()


@pytest.mark.slow
def test_concurrent_processes_never_fork_the_chain(database_url: str) -> None:
    Database.open(database_url).close()  # migrate once, as `init` would
    context = multiprocessing.get_context("fork")
    start = context.Event()
    processes = [
        context.Process(target=_writer, args=(database_url, w, start))
        for w in range(WRITERS)
    ]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * WRITERS

    db = Database.open(database_url)
    trail = AuditTrail(db)
    records = list(trail.records())
    summary = trail.verify([])
    db.close()
    assert summary.records == WRITERS * APPENDS
    assert [r.seq for r in records] == list(range(1, WRITERS * APPENDS + 1))
    assert len({r.prev_hash for r in records}) == len(records)  # no fork
    assert Counter(r.actor for r in records) == {
        f"writer-{w}": APPENDS for w in range(WRITERS)
    }
    # Each writer's own records keep their order: nothing was lost or replayed.
    for w in range(WRITERS):
        mine = [r.details["n"] for r in records if r.actor == f"writer-{w}"]
        assert mine == list(range(APPENDS))
    # The writers really interleaved, or this test proved nothing.
    switches = sum(a.actor != b.actor for a, b in itertools.pairwise(records))
    assert switches >= WRITERS, switches


@pytest.mark.slow
def test_concurrent_first_opens_migrate_once(database_url: str) -> None:
    """Processes opening a fresh database at once all see one migrated schema."""
    context = multiprocessing.get_context("fork")
    start = context.Event()
    processes = [
        context.Process(target=_writer, args=(database_url, w, start)) for w in range(3)
    ]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0, 0]
    db = Database.open(database_url)
    assert db.migrate() == []
    assert AuditTrail(db).verify([]).records == 3 * APPENDS
    db.close()
