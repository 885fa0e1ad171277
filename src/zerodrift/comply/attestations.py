"""Manual attestations: a person's signed-off statement for a CSF subcategory.

Most of Govern (and a few other outcomes) cannot be evidenced by a tool.
They are attested in a version-controlled YAML file, by default
``compliance/attestations.yaml``::

    version: 1
    attestations:
      - subcategory: GV.OC-01
        statement: The mission statement is reviewed yearly by the board.
        by: Jane Doe <jane@example.com>
        date: 2026-01-15
        expires: 2027-01-15
        references: [docs/mission.md, https://intranet.example.com/board/2026]

Each entry needs every key but ``references``. The file is checked as a
whole and every problem is reported with its line: an unknown subcategory
(a CSF 1.1 id gets its CSF 2.0 successor as a hint), a bad date, an expiry
before the date, a subcategory attested twice, an unknown key.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import YAMLError

from zerodrift.comply.catalogs import Catalogs
from zerodrift.errors import Location, OperationalError
from zerodrift.spec.loader import SpecError

__all__ = ["Attestation", "AttestationError", "load_attestations"]

_REQUIRED = ("subcategory", "statement", "by", "date", "expires")
_KEYS = {*_REQUIRED, "references"}


class AttestationError(SpecError):
    """The attestations file is invalid; ``problems`` lists each one located."""

    reference = "attestations-invalid"


@dataclass(frozen=True)
class Attestation:
    """One statement that a subcategory's outcome is achieved."""

    subcategory: str
    statement: str
    by: str
    date: dt.date
    expires: dt.date
    references: tuple[str, ...]
    line: int

    def state(self, on: dt.date) -> str:
        """``valid``, ``expired`` or ``future`` (not yet made) on a given day."""
        if on < self.date:
            return "future"
        return "expired" if on >= self.expires else "valid"

    def to_dict(self) -> dict[str, Any]:
        """Render as a JSON-ready dict."""
        return {
            "subcategory": self.subcategory,
            "statement": self.statement,
            "by": self.by,
            "date": self.date.isoformat(),
            "expires": self.expires.isoformat(),
            "references": list(self.references),
            "line": self.line,
        }


Problems = list[tuple[Location, str, str | None]]


class _DatesAsText(RoundTripConstructor):
    """Keeps dates as text, so a bad one is reported with its line, not raised."""


_DatesAsText.add_constructor(
    "tag:yaml.org,2002:timestamp", _DatesAsText.construct_yaml_str
)


def load_attestations(path: Path, catalogs: Catalogs) -> list[Attestation]:
    """Read and check an attestations file; a missing file means none.

    Raises:
        AttestationError: The file is invalid (every problem, with its line).
        OperationalError: The file exists but cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise OperationalError(
            f"cannot read attestations file {path}: {exc}",
            location=Location(str(path)),
            reference="attestations-unreadable",
        ) from exc
    problems: Problems = []
    entries = _entries(str(path), text, problems)
    found = _parse_entries(str(path), entries, catalogs, problems)
    if problems:
        raise AttestationError(str(path), problems)
    return found


def _entries(name: str, text: str, problems: Problems) -> CommentedSeq:
    try:
        yaml = YAML(typ="rt")
        yaml.Constructor = _DatesAsText
        data = yaml.load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problems.append((Location(name, line), f"not valid YAML: {exc}", None))
        return CommentedSeq()
    if data is None:
        return CommentedSeq()
    if not isinstance(data, CommentedMap) or data.get("version") != 1:
        problems.append(
            (
                Location(name, 1, field="version"),
                "expected a mapping with 'version: 1' and 'attestations'",
                "see docs/comply.md for the format",
            )
        )
        return CommentedSeq()
    entries = data.get("attestations") or CommentedSeq()
    if not isinstance(entries, CommentedSeq):
        line = data.lc.key("attestations")[0] + 1
        problems.append(
            (Location(name, line, field="attestations"), "must be a list", None)
        )
        return CommentedSeq()
    return entries


def _parse_entries(
    name: str, entries: CommentedSeq, catalogs: Catalogs, problems: Problems
) -> list[Attestation]:
    found: list[Attestation] = []
    first_line: dict[str, int] = {}
    for index, entry in enumerate(entries):
        line = entries.lc.item(index)[0] + 1
        where = f"attestations[{index}]"
        if not isinstance(entry, CommentedMap):
            problems.append((Location(name, line, field=where), "not a mapping", None))
            continue
        parsed = _parse_entry(name, where, entry, catalogs, problems)
        if parsed is None:
            continue
        item = Attestation(**parsed, line=line)
        if item.subcategory in first_line:
            problems.append(
                (
                    Location(name, line, field=f"{where}.subcategory"),
                    f"{item.subcategory} is attested twice",
                    f"merge it with the entry on line {first_line[item.subcategory]}",
                )
            )
            continue
        first_line[item.subcategory] = line
        found.append(item)
    return found


def _parse_entry(
    name: str,
    where: str,
    entry: CommentedMap,
    catalogs: Catalogs,
    problems: Problems,
) -> dict[str, Any] | None:
    def problem(key: str, message: str, hint: str | None = None) -> None:
        line = entry.lc.key(key)[0] + 1 if key in entry else entry.lc.line + 1
        problems.append((Location(name, line, field=f"{where}.{key}"), message, hint))

    before = len(problems)
    for key in sorted(set(entry) - _KEYS):
        problem(
            str(key), f"unknown key {key!r}", f"allowed: {', '.join(sorted(_KEYS))}"
        )
    for key in _REQUIRED:
        if key not in entry or entry[key] in (None, ""):
            problem(key, f"missing {key!r}")
    if len(problems) > before:
        return None
    subcategory = str(entry["subcategory"]).strip()
    if catalogs.framework("csf-2.0").item(subcategory) is None:
        problem(
            "subcategory",
            f"unknown CSF 2.0 subcategory {subcategory!r}",
            _successor_hint(subcategory, catalogs),
        )
    dates = {key: _date(entry[key]) for key in ("date", "expires")}
    for key, value in dates.items():
        if value is None:
            problem(key, f"{key!r} is not a date: {entry[key]!r}", "write YYYY-MM-DD")
    start, end = dates["date"], dates["expires"]
    if start is not None and end is not None and end <= start:
        problem("expires", f"expires ({end}) is not after date ({start})")
    references = entry.get("references") or []
    if not isinstance(references, list):
        problem("references", "must be a list of strings")
    if len(problems) > before or start is None or end is None:
        return None
    return {
        "subcategory": subcategory,
        "statement": str(entry["statement"]).strip(),
        "by": str(entry["by"]).strip(),
        "date": start,
        "expires": end,
        "references": tuple(str(r) for r in references),
    }


def _date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        return None


def _successor_hint(subcategory: str, catalogs: Catalogs) -> str:
    successors = catalogs.csf11_to_csf20.get(subcategory)
    if successors:
        return (
            f"{subcategory} is a CSF 1.1 id; attest its CSF 2.0 successor "
            f"{', '.join(successors)}"
        )
    return "use a CSF 2.0 subcategory id such as GV.OC-01"
