"""``zerodrift fim`` end to end: real files, real signatures, real database."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.fim.conftest import by_path, report
from zerodrift.detect.findings import list_findings
from zerodrift.state import Database

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _baseline(project: Path) -> Path:
    return project / ".zerodrift" / "fim" / "baseline.fim"


def test_init_then_clean_check(fim: Any, tree: Path, project: Path) -> None:
    init = fim("init", str(tree), "--format", "json")
    assert init.code == 0, init.err
    summary = json.loads(init.out)
    assert summary["entries"] == 27
    assert summary["algorithm"] == "sha256"
    check = fim("check", "--format", "json")
    assert check.code == 0, check.err
    data = report(check)
    assert data["mode"] == "fast"
    assert data["scanned"] == 27
    assert data["changes"] == []


def test_every_change_type_is_reported_with_old_and_new(
    fim: Any, tree: Path, project: Path
) -> None:
    assert fim("init", str(tree)).code == 0
    conf = tree / "etc" / "app"
    (conf / "conf00").write_text("setting=changed\n")
    os.chmod(conf / "conf01", 0o600)
    os.chown(conf / "conf02", 1234, 5678)
    (conf / "conf03").unlink()
    (conf / "new").write_text("new\n")
    (tree / "bin" / "link").unlink()
    (tree / "bin" / "link").symlink_to("elsewhere")
    os.setxattr(conf / "conf04", "user.tag", b"v1")
    os.link(conf / "conf05", tree / "bin" / "hard")

    check = fim("check", "--format", "json")
    assert check.code == 1
    changes = by_path(report(check))
    assert changes[str(conf / "conf00")]["attributes"]["hash"]["new"] == (
        hashlib.sha256(b"setting=changed\n").hexdigest()
    )
    assert changes[str(conf / "conf01")]["attributes"]["mode"] == {
        "old": "0644",
        "new": "0600",
    }
    owner = changes[str(conf / "conf02")]["attributes"]
    assert (owner["uid"]["new"], owner["gid"]["new"]) == (1234, 5678)
    assert changes[str(conf / "conf03")]["kind"] == "removed"
    assert changes[str(conf / "new")]["kind"] == "added"
    assert changes[str(tree / "bin" / "link")]["attributes"]["target"] == {
        "old": "tool",
        "new": "elsewhere",
    }
    assert "user.tag" in changes[str(conf / "conf04")]["attributes"]["xattrs"]["new"]
    assert changes[str(conf / "conf05")]["attributes"]["nlink"] == {"old": 1, "new": 2}
    assert changes[str(tree / "bin" / "hard")]["kind"] == "added"
    assert len(changes) == 9


def test_full_and_fast_modes_are_named_and_sampling_covers_all(
    fim: Any, tree: Path, project: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    from zerodrift.detect.fim import open_baseline, run_check
    from zerodrift.protect.keys import load_public_key

    assert fim("init", str(tree)).code == 0
    full = report(fim("check", "--full", "--format", "json"))
    assert (full["mode"], full["hashed"]) == ("full", 21)
    fast = report(fim("check", "--format", "json"))
    assert fast["mode"] == "fast"
    assert fast["hashed"] < 21
    # A fast check a whole sample period later must rehash every file.
    key = load_public_key("project", project / "keys" / "project.pub")
    baseline = open_baseline(_baseline(project), [key])
    db = Database.open(f"sqlite:///{project / '.zerodrift' / 'state.db'}")
    try:
        later = datetime.now(UTC) + timedelta(days=8)
        result = run_check(db, baseline, full=False, workers=1, now=later)
    finally:
        db.close()
    assert result.stats.hashed == 21
    assert result.sample[1] - result.sample[0] + 1 == 256


def test_content_swap_with_restored_mtime_is_caught_by_fast_mode(
    fim: Any, tree: Path, project: Path
) -> None:
    assert fim("init", str(tree)).code == 0
    target = tree / "etc" / "app" / "conf07"
    before = target.stat()
    target.write_text("setting=7!\n"[: before.st_size])
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    changes = by_path(report(fim("check", "--format", "json")))
    assert "hash" in changes[str(target)]["attributes"]


def test_findings_and_audit_trail(
    fim: Any, tree: Path, project: Path, cli: Any
) -> None:
    assert fim("init", str(tree)).code == 0
    (tree / "etc" / "app" / "conf09").write_text("x\n")
    assert fim("check").code == 1
    db = Database.open(f"sqlite:///{project / '.zerodrift' / 'state.db'}")
    try:
        found = list(list_findings(db, source="fim"))
    finally:
        db.close()
    assert len(found) == 1
    assert found[0]["kind"] == "file-changed"
    assert found[0]["csf"] == ["DE.CM-09"]
    assert found[0]["details"]["csf_1_1"] == ["PR.DS-6"]
    log = cli("-C", str(project), "audit", "log", "--action", "fim", "--format", "json")
    actions = [r["action"] for r in json.loads(log.out)["records"]]
    assert actions == ["fim.init", "fim.check"]


def test_ocsf_lines_one_per_change(fim: Any, tree: Path) -> None:
    assert fim("init", str(tree)).code == 0
    (tree / "etc" / "app" / "conf10").unlink()
    (tree / "etc" / "app" / "conf11").write_text("y\n")
    result = fim("check", "--format", "ocsf")
    assert result.code == 1
    events = [json.loads(line) for line in result.out.splitlines()]
    assert len(events) == 2
    assert {e["class_uid"] for e in events} == {2004}
    assert all("CSF1.1:PR.DS-6" in e["metadata"]["labels"] for e in events)
    assert {e["resources"][0]["type"] for e in events} == {"file"}


def test_table_output_names_mode_and_counts(fim: Any, tree: Path) -> None:
    assert fim("init", str(tree)).code == 0
    clean = fim("check")
    assert clean.code == 0
    assert clean.out == "FIM fast check: no changes\n"
    assert "added 0, removed 0, changed 0, unverifiable 0" in clean.err
    (tree / "etc" / "app" / "conf12").write_text("z\n")
    result = fim("check", "--full")
    assert result.code == 1
    assert "full check: 1 change(s)" in result.out
    assert "hash" in result.out
    assert "mode full" in result.err
    assert "changed 1" in result.err


@pytest.mark.parametrize("edit", ["hash", "reorder", "strip"])
def test_cli_refuses_a_tampered_baseline(
    fim: Any, tree: Path, project: Path, edit: str
) -> None:
    assert fim("init", str(tree)).code == 0
    path = _baseline(project)
    lines = path.read_bytes().split(b"\n")
    if edit == "hash":
        index = next(i for i, line in enumerate(lines) if b"\tfile\t" in line)
        fields = lines[index].split(b"\t")
        fields[10] = b"0" * 64
        lines[index] = b"\t".join(fields)
    elif edit == "reorder":
        lines[3], lines[4] = lines[4], lines[3]
    else:
        lines = [*lines[:-2], b""]
    path.write_bytes(b"\n".join(lines))
    result = fim("check")
    assert result.code == 1
    assert "baseline" in result.err
    assert result.out == ""


def test_cli_refuses_an_older_validly_signed_baseline(
    fim: Any, tree: Path, project: Path
) -> None:
    assert fim("init", str(tree)).code == 0
    older = _baseline(project).read_bytes()
    (tree / "etc" / "app" / "conf13").write_text("backdoor\n")
    assert fim("update", str(tree / "etc" / "app" / "conf13")).code == 0
    _baseline(project).write_bytes(older)
    result = fim("check")
    assert result.code == 1
    assert "fim-baseline-replaced" in result.err


def test_a_missing_baseline_is_a_setup_error_until_one_was_recorded(
    fim: Any, tree: Path, project: Path
) -> None:
    before = fim("check")
    assert before.code == 4
    assert "fim-baseline-missing" in before.err
    assert fim("init", str(tree)).code == 0
    _baseline(project).unlink()
    for argv in (["check"], ["check", "--full"], ["update", str(tree)]):
        result = fim(*argv)
        assert result.code == 1, argv
        assert "fim-baseline-removed" in result.err
        assert "is gone, but this project recorded it" in result.err


def test_findings_persist_once_and_resolve_when_the_tree_matches_again(
    fim: Any, tree: Path, project: Path
) -> None:
    assert fim("init", str(tree)).code == 0
    changed = tree / "etc" / "app" / "conf09"
    added = tree / "bin" / "dropped"
    changed.write_text("x\n")
    added.write_text("#!/bin/sh\n")
    assert fim("check").code == 1
    assert fim("check", "--full").code == 1

    def stored() -> dict[str, dict[str, Any]]:
        db = Database.open(f"sqlite:///{project / '.zerodrift' / 'state.db'}")
        try:
            rows = list(list_findings(db, source="fim"))
        finally:
            db.close()
        return {r["subject"].split(":", 1)[1]: r for r in rows}

    rows = stored()
    assert {p: r["times_seen"] for p, r in rows.items()} == {
        str(changed): 2,
        str(added): 2,
    }
    added.unlink()
    assert fim("check").code == 1
    rows = stored()
    assert rows[str(added)]["status"] == "resolved"
    assert rows[str(added)]["resolution"] == "matches the signed baseline again"
    assert rows[str(changed)]["status"] == "open"

    assert fim("update", str(changed)).code == 0
    rows = stored()
    assert rows[str(changed)]["status"] == "resolved"
    assert rows[str(changed)]["resolution"].startswith("accepted into the baseline by")
    assert fim("check").code == 0


def test_update_accepts_only_named_paths_and_records_who(
    fim: Any, tree: Path, project: Path, cli: Any
) -> None:
    assert fim("init", str(tree)).code == 0
    (tree / "etc" / "app" / "conf14").write_text("accepted\n")
    (tree / "etc" / "app" / "conf15").write_text("not accepted\n")
    (tree / "bin" / "new").write_text("new\n")
    update = fim("update", str(tree / "etc" / "app" / "conf14"), str(tree / "bin"))
    assert update.code == 0, update.err
    left = by_path(report(fim("check", "--format", "json")))
    assert set(left) == {str(tree / "etc" / "app" / "conf15")}
    log = cli(
        "-C", str(project), "audit", "log", "--action", "fim.update", "--format", "json"
    )
    record = json.loads(log.out)["records"][0]
    assert record["details"]["accepted"] == [
        str(tree / "bin"),
        str(tree / "etc" / "app" / "conf14"),
    ]
    assert record["actor"]


def test_update_from_report_and_refusal_when_moved_on(
    fim: Any, tree: Path, project: Path, tmp_path: Path
) -> None:
    assert fim("init", str(tree)).code == 0
    (tree / "etc" / "app" / "conf16").write_text("reviewed\n")
    (tree / "etc" / "app" / "conf17").unlink()
    saved = tmp_path / "report.json"
    saved.write_text(fim("check", "--format", "json").out)
    (tree / "etc" / "app" / "conf16").write_text("changed after review\n")
    refused = fim("update", "--from-report", str(saved))
    assert refused.code == 1
    assert "changed again" in refused.err
    saved.write_text(fim("check", "--format", "json").out)
    assert fim("update", "--from-report", str(saved)).code == 0
    assert fim("check").code == 0


def test_update_needs_something_to_accept(fim: Any, tree: Path) -> None:
    assert fim("init", str(tree)).code == 0
    result = fim("update")
    assert result.code == 3
    assert "nothing to accept" in result.err


def test_rules_file_overrides_per_folder(
    fim: Any, tree: Path, project: Path, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "version: 1\n"
        "exclude: ['*.tmp']\n"
        f"paths:\n  - path: {tree}\n    severity: high\n"
        f"  - path: {tree / 'etc'}\n    attributes: [perms]\n    severity: low\n"
    )
    assert fim("init", "--rules", str(rules)).code == 0
    (tree / "etc" / "app" / "conf18").write_text("content only\n")
    os.chmod(tree / "etc" / "app" / "conf19", 0o600)
    (tree / "bin" / "tool").write_bytes(b"replaced")
    (tree / "bin" / "scratch.tmp").write_text("ignored\n")
    changes = by_path(report(fim("check", "--format", "json")))
    assert set(changes) == {
        str(tree / "etc" / "app" / "conf19"),
        str(tree / "bin" / "tool"),
    }
    assert changes[str(tree / "etc" / "app" / "conf19")]["severity"] == "low"
    assert changes[str(tree / "bin" / "tool")]["severity"] == "high"


def test_bad_rules_file_is_a_located_config_error(fim: Any, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\npaths:\n  - path: /srv\n    severity: urgent\n")
    result = fim("init", "--rules", str(rules))
    assert result.code == 3
    assert f"{rules}:4" in result.err


def test_non_utf8_names_end_to_end(fim: Any, tree: Path) -> None:
    odd = os.fsencode(tree) + b"/bin/\xff\xfe"
    with open(odd, "wb") as handle:
        handle.write(b"one")
    assert fim("init", str(tree)).code == 0
    assert fim("check").code == 0
    with open(odd, "wb") as handle:
        handle.write(b"two")
    result = fim("check", "--format", "json")
    assert result.code == 1
    assert [os.fsencode(p) for p in by_path(report(result))] == [odd]


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Any:
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


@ROOT_ONLY
def test_disk_full_keeps_the_old_baseline(
    fim: Any, tree: Path, project: Path, tiny_disk: Path
) -> None:
    target = tiny_disk / "baseline.fim"
    assert fim("init", str(tree), "--baseline", str(target)).code == 0
    before = target.read_bytes()
    many = tree / "many"
    many.mkdir()
    for index in range(3000):
        (many / f"file-with-a-long-name-{index:05d}").write_text("x")
    result = fim("init", str(tree), "--baseline", str(target))
    assert result.code == 4
    assert "No space left" in result.err
    assert target.read_bytes() == before
    assert [p.name for p in tiny_disk.iterdir()] == ["baseline.fim"]
    shutil.rmtree(many)
    assert fim("check", "--baseline", str(target)).code == 0


def test_fast_check_split_over_processes_matches_one_process(
    fim: Any, tmp_path: Path
) -> None:
    top = tmp_path / "wide"
    for index in range(12):
        folder = top / f"dir{index}"
        folder.mkdir(parents=True)
        for number in range(5):
            (folder / f"f{number}").write_text(f"{index}/{number}")
    (top / "loose").write_text("file at the top")
    assert fim("init", str(top)).code == 0
    shutil.rmtree(top / "dir3")
    (top / "dir13").mkdir()
    (top / "dir13" / "new").write_text("new")
    for index in (0, 5, 7, 11):
        (top / f"dir{index}" / "f2").write_text("changed")
    (top / "loose").unlink()
    one = report(fim("check", "--workers", "1", "--no-record", "--format", "json"))
    two = report(fim("check", "--workers", "2", "--no-record", "--format", "json"))
    assert one["changes"] == two["changes"]
    assert one["counts"] == {"added": 2, "removed": 7, "changed": 4, "unverifiable": 0}


@ROOT_ONLY
def test_file_capabilities_and_acls_are_watched(fim: Any, tree: Path) -> None:
    import struct

    tool = tree / "bin" / "tool"
    conf = tree / "etc" / "app" / "conf06"
    assert fim("init", str(tree)).code == 0
    # vfs_cap_data revision 2 granting CAP_NET_BIND_SERVICE (bit 10), effective.
    os.setxattr(
        tool, "security.capability", struct.pack("<5I", 0x02000001, 1 << 10, 0, 0, 0)
    )
    # An access ACL: owner rw, user 1234 r, group r, mask r, other r.
    entries = [(0x01, 6, 0xFFFFFFFF), (0x02, 4, 1234), (0x04, 4, 0xFFFFFFFF)]
    entries += [(0x10, 4, 0xFFFFFFFF), (0x20, 4, 0xFFFFFFFF)]
    acl = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)
    os.setxattr(conf, "system.posix_acl_access", acl)
    changes = by_path(report(fim("check", "--format", "json")))
    assert "security.capability" in changes[str(tool)]["attributes"]["xattrs"]["new"]
    assert (
        "system.posix_acl_access" in changes[str(conf)]["attributes"]["xattrs"]["new"]
    )


def test_split_fast_check_with_several_roots_and_escaped_names(
    fim: Any, tmp_path: Path
) -> None:
    roots = [tmp_path / "one", tmp_path / "two"]
    for root in roots:
        for name in ["a", "b\\c", "d\te", "f", "g", "h"]:
            (root / name).mkdir(parents=True)
            (root / name / "x").write_text(name)
    assert fim("init", *map(str, roots)).code == 0
    for root in roots:
        for name in ["b\\c", "d\te", "g"]:
            (root / name / "x").write_text("changed")
        shutil.rmtree(root / "h")
    one = report(fim("check", "--workers", "1", "--no-record", "--format", "json"))
    two = report(fim("check", "--workers", "2", "--no-record", "--format", "json"))
    assert one["changes"] == two["changes"]
    assert one["counts"]["changed"] == 6
    assert one["counts"]["removed"] == 4


def test_fim_needs_only_the_specs_trust_keys(
    fim: Any, cli: Any, tree: Path, project: Path
) -> None:
    # A fleet setting fim does not use cannot stop a host's file check; a
    # broken trust policy, which says which signatures count, does.
    assert fim("init", str(tree)).code == 0
    spec = project / "fleet.yaml"
    original = spec.read_text(encoding="utf-8")
    spec.write_text(original + "\nnot_a_fleet_setting: 1\n", encoding="utf-8")
    assert cli("-C", str(project), "spec", "validate").code == 3
    check = fim("check", "--format", "json")
    assert check.code == 0, check.err
    assert report(check)["changes"] == []
    spec.write_text(
        original.replace("trust:\n  keys:\n", "trust:\n  keys:\n    Bad Name: x\n"),
        encoding="utf-8",
    )
    refused = fim("check")
    assert refused.code == 3
    assert "invalid key name 'Bad Name'" in refused.err
