from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from zerodrift.comply.attestations import AttestationError, load_attestations
from zerodrift.comply.catalogs import load_catalogs

GOOD = """\
version: 1
attestations:
  - subcategory: GV.OC-01
    statement: The board reviews the mission yearly.
    by: Jane Doe <jane@example.com>
    date: 2026-01-15
    expires: 2027-01-15
    references: [docs/mission.md]
  - subcategory: GV.PO-01
    statement: The security policy is approved by the CISO.
    by: CISO
    date: "2025-01-01"
    expires: "2026-01-01"
"""


def _load(tmp_path: Path, text: str) -> list:  # type: ignore[type-arg]
    path = tmp_path / "attestations.yaml"
    path.write_text(text)
    return load_attestations(path, load_catalogs())


def test_valid_file_is_read(tmp_path: Path) -> None:
    found = _load(tmp_path, GOOD)
    assert [(a.subcategory, a.line) for a in found] == [
        ("GV.OC-01", 3),
        ("GV.PO-01", 9),
    ]
    first, second = found
    assert first.references == ("docs/mission.md",)
    assert first.state(dt.date(2026, 6, 1)) == "valid"
    assert first.state(dt.date(2027, 1, 15)) == "expired"
    assert first.state(dt.date(2025, 12, 31)) == "future"
    assert second.date == dt.date(2025, 1, 1)


def test_missing_file_means_no_attestations(tmp_path: Path) -> None:
    assert load_attestations(tmp_path / "absent.yaml", load_catalogs()) == []


def _problems(tmp_path: Path, text: str) -> list[tuple[int | None, str]]:
    with pytest.raises(AttestationError) as caught:
        _load(tmp_path, text)
    assert caught.value.reference == "attestations-invalid"
    return [(loc.line, msg) for loc, msg, _ in caught.value.problems]


def test_unknown_subcategory_is_located(tmp_path: Path) -> None:
    text = GOOD.replace("GV.PO-01", "GV.PO-09")
    assert _problems(tmp_path, text) == [(9, "unknown CSF 2.0 subcategory 'GV.PO-09'")]


def test_csf_1_1_id_gets_its_successor_as_hint(tmp_path: Path) -> None:
    with pytest.raises(AttestationError) as caught:
        _load(tmp_path, GOOD.replace("GV.OC-01", "ID.BE-2"))
    assert caught.value.hint is not None
    assert "GV.OC-01" in caught.value.hint
    assert str(caught.value.location).endswith(
        "attestations.yaml:3 (attestations[0].subcategory)"
    )


def test_bad_dates_are_located(tmp_path: Path) -> None:
    text = GOOD.replace("date: 2026-01-15", "date: 2026-13-45").replace(
        'expires: "2026-01-01"', 'expires: "2024-12-31"'
    )
    assert _problems(tmp_path, text) == [
        (6, "'date' is not a date: '2026-13-45'"),
        (13, "expires (2024-12-31) is not after date (2025-01-01)"),
    ]


def test_duplicate_subcategory_names_the_first_line(tmp_path: Path) -> None:
    text = GOOD.replace("GV.PO-01", "GV.OC-01")
    with pytest.raises(AttestationError) as caught:
        _load(tmp_path, text)
    ((loc, message, hint),) = caught.value.problems
    assert (loc.line, message) == (9, "GV.OC-01 is attested twice")
    assert hint == "merge it with the entry on line 3"


def test_missing_and_unknown_keys_are_all_reported(tmp_path: Path) -> None:
    text = GOOD.replace("    by: CISO\n", "    signed: CISO\n")
    problems = _problems(tmp_path, text)
    assert (11, "unknown key 'signed'") in problems
    assert any(message == "missing 'by'" for _, message in problems)


def test_not_yaml_or_wrong_shape(tmp_path: Path) -> None:
    assert _problems(tmp_path, "version: 1\nattestations: [\n")[0][1].startswith(
        "not valid YAML"
    )
    assert _problems(tmp_path, "- just a list\n")[0][0] == 1
    assert _problems(tmp_path, "version: 1\nattestations: {a: 1}\n") == [
        (2, "must be a list")
    ]
