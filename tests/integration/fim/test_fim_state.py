"""FIM state (baselines, runs, findings) on SQLite and on real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from zerodrift.detect.fim import (
    create_baseline,
    open_baseline,
    record_baseline,
    run_check,
    to_findings,
    verify_current,
)
from zerodrift.detect.fim.rules import rules_for_paths
from zerodrift.detect.findings import list_findings, record_findings
from zerodrift.errors import IntegrityError
from zerodrift.protect.keys import (
    generate_private_key,
    load_public_key,
    load_signer,
    write_keypair,
)
from zerodrift.state import Database


def test_baseline_records_runs_and_findings(database_url: str, tmp_path: Path) -> None:
    write_keypair(generate_private_key(), tmp_path / "k", tmp_path / "k.pub", b"p" * 10)
    signer = load_signer(tmp_path / "k", b"p" * 10)
    key = load_public_key("k", tmp_path / "k.pub")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a").write_text("a")
    path = tmp_path / "b.fim"
    db = Database.open(database_url)
    try:
        statement, _ = create_baseline(path, rules_for_paths([str(tree)]), signer)
        digest = record_baseline(db, path, statement)
        baseline = open_baseline(path, [key])
        assert baseline.digest == digest
        verify_current(db, baseline)

        (tree / "a").write_text("b")
        first = run_check(db, baseline, full=False, workers=1)
        second = run_check(db, baseline, full=False, workers=1)
        assert [c.kind for c in first.changes] == ["changed"]
        # Each fast run continues the sample where the previous one stopped.
        assert second.sample[0] == first.sample[1] + 1
        assert record_findings(db, to_findings(first, "host")).new
        stored = list(list_findings(db, source="fim"))
        assert stored[0]["subject"] == f"host:{tree / 'a'}"

        # A second, newer baseline makes the first one stale.
        statement, _ = create_baseline(tmp_path / "new.fim", baseline.rules, signer)
        path.write_bytes((tmp_path / "new.fim").read_bytes())
        record_baseline(db, tmp_path / "new.fim", statement)
        replaced = open_baseline(path, [key])
        with pytest.raises(IntegrityError, match="not the one recorded last"):
            verify_current(db, replaced)
    finally:
        db.close()
