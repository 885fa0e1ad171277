"""The fast mode's sample pass: content behind unchanged metadata is verified.

A file whose content differs from its recorded digest while every lstat
field matches cannot be made here without editing the disk under the file
system, so the baseline is made to record a wrong digest instead (signed
with the trusted key, as an attacker with disk access would face it the
other way round): only rehashing can tell the two apart.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from zerodrift.detect.fim import open_baseline, record_baseline, run_check
from zerodrift.detect.fim.baseline import BaselineWriter
from zerodrift.detect.fim.entry import encode_entry
from zerodrift.detect.fim.monitor import create_baseline
from zerodrift.detect.fim.rules import rules_for_paths
from zerodrift.errors import IntegrityError
from zerodrift.protect.keys import (
    generate_private_key,
    load_public_key,
    load_signer,
    write_keypair,
)
from zerodrift.state import Database, utc_now


@pytest.mark.parametrize("workers", [1, 2])
def test_a_digest_behind_unchanged_metadata_is_caught_when_sampled(
    tmp_path: Path, workers: int
) -> None:
    write_keypair(generate_private_key(), tmp_path / "k", tmp_path / "k.pub", b"p" * 10)
    signer = load_signer(tmp_path / "k", b"p" * 10)
    key = load_public_key("k", tmp_path / "k.pub")
    tree = tmp_path / "tree"
    for folder in ("a", "b", "c"):
        (tree / folder).mkdir(parents=True)
        for index in range(20):
            (tree / folder / f"f{index}").write_text(f"{folder}{index}")
    rules = rules_for_paths([str(tree)])
    honest = tmp_path / "honest.fim"
    create_baseline(honest, rules, signer, workers=1)
    victim = tree / "b" / "f7"
    path = tmp_path / "b.fim"
    with BaselineWriter(path, rules, "scan") as writer:
        for entry in open_baseline(honest, [key]).entries():
            if entry.path == bytes(victim):
                entry.hash = "0" * 64
            writer.add_line(encode_entry(entry))
        statement = writer.sign(signer, created_at=utc_now())
    db = Database.open(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        record_baseline(db, path, statement)
        baseline = open_baseline(path, [key])
        soon = run_check(db, baseline, full=False, workers=workers)
        assert soon.stats.hashed < 60
        # A whole sample period later every bucket is due: the file is
        # rehashed although its lstat data never moved.
        later = datetime.now(UTC) + timedelta(days=8)
        result = run_check(db, baseline, full=False, workers=workers, now=later)
    finally:
        db.close()
    assert result.stats.hashed == 60
    assert [(c.path, c.kind, list(c.attributes)) for c in result.changes] == [
        (bytes(victim), "changed", ["hash"])
    ]


def test_a_replaced_baseline_is_refused_before_anything_is_recorded(
    tmp_path: Path,
) -> None:
    # The fast check starts walking before it asks the database whether the
    # baseline is current; a refusal must still leave no run behind.
    write_keypair(generate_private_key(), tmp_path / "k", tmp_path / "k.pub", b"p" * 10)
    signer = load_signer(tmp_path / "k", b"p" * 10)
    key = load_public_key("k", tmp_path / "k.pub")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a").write_text("a")
    rules = rules_for_paths([str(tree)])
    path = tmp_path / "b.fim"
    create_baseline(path, rules, signer)
    db = Database.open(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with pytest.raises(IntegrityError, match="never recorded"):
            run_check(lambda: db, open_baseline(path, [key]), full=False, verify=True)
        with db.read() as conn:
            from sqlalchemy import func, select

            from zerodrift.state.schema import fim_runs

            assert (
                conn.execute(select(func.count()).select_from(fim_runs)).scalar() == 0
            )
    finally:
        db.close()
