"""Report runs: what each report concluded, kept to compare runs over time.

Every ``zerodrift report`` stores a row with the status of each item and the
outcome of each control (not the rendered document, which the user keeps).
:func:`diff_runs` compares two rows: which items changed status, which
controls changed outcome, and how the counts moved.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from zerodrift._internal.canonical import canonical_json
from zerodrift.comply.report import Report
from zerodrift.errors import ConfigError
from zerodrift.state import Database
from zerodrift.state.schema import report_runs

__all__ = ["Run", "diff_runs", "get_run", "list_runs", "new_run_id", "record_run"]


@dataclass(frozen=True)
class Run:
    """A stored report run."""

    id: str
    created_at: str
    framework: str
    environment: str | None
    as_of: str
    format: str
    failed: bool
    content_digest: str
    summary: dict[str, Any]
    statuses: dict[str, str]
    outcomes: dict[str, str]

    def to_dict(self, *, full: bool = False) -> dict[str, Any]:
        """Render as a JSON-ready dict (statuses and outcomes when ``full``)."""
        data: dict[str, Any] = {
            "id": self.id,
            "created_at": self.created_at,
            "framework": self.framework,
            "environment": self.environment,
            "as_of": self.as_of,
            "format": self.format,
            "failed": self.failed,
            "content_digest": self.content_digest,
            "counts": self.summary.get("counts", {}),
        }
        if full:
            data["statuses"] = self.statuses
            data["outcomes"] = self.outcomes
        return data


def new_run_id() -> str:
    """Return a fresh run identifier (32 hex digits)."""
    return uuid.uuid4().hex


def record_run(
    db: Database,
    report: Report,
    fmt: str,
    content_digest: str,
    *,
    run_id: str | None = None,
) -> Run:
    """Store a report run and return it.

    Raises:
        OperationalError: The database failed.
    """
    run = Run(
        id=run_id or new_run_id(),
        created_at=report.generated_at,
        framework=report.coverage.framework.key,
        environment=report.environment,
        as_of=report.as_of,
        format=fmt,
        failed=report.failed,
        content_digest=content_digest,
        summary=report.coverage.summary(),
        statuses={s.item.id: s.status.value for s in report.coverage.items},
        outcomes={r.control: r.outcome.value for r in report.coverage.results},
    )
    row = run.to_dict(full=True)
    del row["counts"]
    for key in ("statuses", "outcomes"):
        row[key] = canonical_json(row[key]).decode()
    row["summary"] = canonical_json(run.summary).decode()
    with db.write() as conn:
        conn.execute(report_runs.insert().values(**row))
    return run


def _run(row: Any) -> Run:
    return Run(
        id=row.id,
        created_at=row.created_at,
        framework=row.framework,
        environment=row.environment,
        as_of=row.as_of,
        format=row.format,
        failed=bool(row.failed),
        content_digest=row.content_digest,
        summary=json.loads(row.summary),
        statuses=json.loads(row.statuses),
        outcomes=json.loads(row.outcomes),
    )


def list_runs(db: Database, limit: int = 20) -> list[Run]:
    """Return the newest runs, newest first."""
    query = (
        select(report_runs)
        .order_by(report_runs.c.created_at.desc(), report_runs.c.id)
        .limit(limit)
    )
    with db.read() as conn:
        return [_run(row) for row in conn.execute(query)]


def get_run(db: Database, ident: str) -> Run:
    """Find a run by its id or a unique prefix of at least 6 characters.

    Raises:
        ConfigError: No run, or more than one, matches.
    """
    if len(ident) < 6:
        raise ConfigError(
            f"run id {ident!r} is too short",
            hint="give at least 6 characters; 'zerodrift report --runs' lists them",
            reference="report-run-unknown",
        )
    query = select(report_runs).where(report_runs.c.id.like(f"{ident.lower()}%"))
    with db.read() as conn:
        rows = conn.execute(query.limit(2)).all()
    if len(rows) != 1:
        raise ConfigError(
            f"no report run {ident!r}"
            if not rows
            else f"run id {ident!r} is ambiguous",
            hint="'zerodrift report --runs' lists the stored runs",
            reference="report-run-unknown",
        )
    return _run(rows[0])


def diff_runs(old: Run, new: Run) -> dict[str, Any]:
    """Compare two runs of the same framework.

    Raises:
        ConfigError: The runs are of different frameworks.
    """
    if old.framework != new.framework:
        raise ConfigError(
            f"run {old.id[:12]} is {old.framework} but run {new.id[:12]} is "
            f"{new.framework}",
            hint="compare two runs of the same framework",
            reference="report-diff-mismatch",
        )
    items = [
        {"id": key, "from": old.statuses.get(key), "to": new.statuses.get(key)}
        for key in sorted(old.statuses.keys() | new.statuses.keys())
        if old.statuses.get(key) != new.statuses.get(key)
    ]
    controls = [
        {"id": key, "from": old.outcomes.get(key), "to": new.outcomes.get(key)}
        for key in sorted(old.outcomes.keys() | new.outcomes.keys())
        if old.outcomes.get(key) != new.outcomes.get(key)
    ]
    before, after = old.summary.get("counts", {}), new.summary.get("counts", {})
    counts = {
        status: {"from": before.get(status, 0), "to": after.get(status, 0)}
        for status in dict.fromkeys([*before, *after])
    }
    return {
        "from": old.to_dict(),
        "to": new.to_dict(),
        "items": items,
        "controls": controls,
        "counts": counts,
    }
