"""A fast check split over processes reports what one process reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from zerodrift.detect.fim import open_baseline, record_baseline, run_check, scanner
from zerodrift.detect.fim.monitor import create_baseline
from zerodrift.detect.fim.rules import rules_for_paths, sort_key
from zerodrift.protect.keys import (
    generate_private_key,
    load_public_key,
    load_signer,
    write_keypair,
)
from zerodrift.state import Database


def test_an_unlisted_folder_split_over_processes_is_unverifiable_not_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_keypair(generate_private_key(), tmp_path / "k", tmp_path / "k.pub", b"p" * 10)
    signer = load_signer(tmp_path / "k", b"p" * 10)
    key = load_public_key("k", tmp_path / "k.pub")
    tree = tmp_path / "tree"
    big = tree / "big"
    for folder in (big / "inner", tree / "small"):
        folder.mkdir(parents=True)
        for index in range(40):
            (folder / f"f{index:02}").write_text(str(index))
    path = tmp_path / "b.fim"
    statement, _ = create_baseline(
        path, rules_for_paths([str(tree)]), signer, workers=1
    )
    listing = scanner._list

    def refuse_big(folder: bytes) -> Any:
        return "Permission denied" if folder == bytes(big) else listing(folder)

    # Forked share processes inherit the refusal.
    monkeypatch.setattr(scanner, "_list", refuse_big)
    db = Database.open(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        record_baseline(db, path, statement)
        baseline = open_baseline(path, [key])
        reports = [
            run_check(db, baseline, full=False, workers=workers)
            for workers in (1, 2, 3, 5)
        ]
    finally:
        db.close()
    # Most of the tree is under the refused folder, so the cuts fall inside it.
    inside = sort_key(bytes(big)) + b"\0"
    assert sum(key.startswith(inside) for _, key in baseline.split(5)) >= 2
    seen = [[(c.path, c.kind) for c in report.changes] for report in reports]
    assert all(changes == seen[0] for changes in seen)
    kinds = {kind for _, kind in seen[0]}
    assert kinds == {"unverifiable", "changed"}
    assert [p for p, kind in seen[0] if kind == "changed"] == [bytes(big)]
    assert len(seen[0]) == 1 + 41  # the folder, then "inner" and its 40 files
