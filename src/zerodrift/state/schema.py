"""Tables of the state database, as SQLAlchemy Core metadata.

One schema serves SQLite and PostgreSQL. Times are stored as ISO 8601 UTC
strings with microseconds (``2026-01-02T03:04:05.123456Z``): they sort
correctly as text, hash identically on every engine, and need no time-zone
handling in either database. Structured details are canonical JSON text.

Tables are created by the versioned migrations in
:mod:`zerodrift.state.migrations`, never by ``metadata.create_all``.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = [
    "audit_checkpoints",
    "audit_records",
    "findings",
    "fim_baselines",
    "fim_runs",
    "reconcile_nodes",
    "reconcile_runs",
    "reconcile_steps",
    "recoveries",
    "inventory_snapshots",
    "metadata",
    "report_runs",
    "schema_migrations",
    "spec_revisions",
    "state_identity",
]

metadata = MetaData()

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", String(200), nullable=False),
    Column("applied_at", String(32), nullable=False),
)

state_identity = Table(
    "state_identity",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("created_at", String(32), nullable=False),
)
"""One row: a random id naming this state database (and so this project)."""

audit_records = Table(
    "audit_records",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("recorded_at", String(32), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("ci_identity", String(500)),
    Column("action", String(100), nullable=False),
    Column("subject", String(500), nullable=False),
    Column("details", Text, nullable=False),
    Column("git_commit", String(64)),
    Column("git_dirty", Boolean, nullable=False),
    Column("prev_hash", String(64), nullable=False, unique=True),
    Column("hash", String(64), nullable=False, unique=True),
    Index("ix_audit_records_action", "action"),
    Index("ix_audit_records_recorded_at", "recorded_at"),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("seq", Integer, nullable=False),
    Column("head_hash", String(64), nullable=False),
    Column("keyid", String(128), nullable=False),
    Column("envelope", Text, nullable=False),
    Column("created_at", String(32), nullable=False),
)

inventory_snapshots = Table(
    "inventory_snapshots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("taken_at", String(32), nullable=False),
    Column("environment", String(100)),
    Column("spec_digest", String(80), nullable=False),
    Column("git_commit", String(64)),
    Column("content_digest", String(80), nullable=False),
    Column("content", Text, nullable=False),
    Index("ix_inventory_snapshots_taken_at", "taken_at"),
)

spec_revisions = Table(
    "spec_revisions",
    metadata,
    Column("spec_digest", String(80), primary_key=True),
    Column("first_seen_at", String(32), nullable=False),
    Column("git_commit", String(64)),
    Column("git_dirty", Boolean, nullable=False),
)

findings = Table(
    "findings",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("found_at", String(32), nullable=False),
    Column("source", String(50), nullable=False),
    Column("kind", String(100), nullable=False),
    Column("severity", String(20), nullable=False),
    Column("environment", String(100)),
    Column("subject", String(500), nullable=False),
    Column("summary", Text, nullable=False),
    Column("details", Text, nullable=False),
    Column("csf", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("resolved_at", String(32)),
    Column("incident_id", String(64)),
    # Added by migration 3: what the finding is about (without when), when
    # it was last seen, how often, and why it was resolved.
    Column("fingerprint", String(64)),
    Column("last_seen_at", String(32)),
    Column("times_seen", Integer),
    Column("resolution", Text),
    Index("ix_findings_found_at", "found_at"),
    Index("ix_findings_source_kind", "source", "kind"),
    Index("ix_findings_status", "status"),
    Index("ix_findings_fingerprint", "fingerprint"),
)

report_runs = Table(
    "report_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("created_at", String(32), nullable=False),
    Column("framework", String(20), nullable=False),
    Column("environment", String(100)),
    Column("as_of", String(32), nullable=False),
    Column("format", String(20), nullable=False),
    Column("failed", Boolean, nullable=False),
    Column("content_digest", String(80), nullable=False),
    Column("summary", Text, nullable=False),
    Column("statuses", Text, nullable=False),
    Column("outcomes", Text, nullable=False),
    Index("ix_report_runs_created_at", "created_at"),
)

# --- runtime and reconcile (migrations 20-29) ------------------------------

reconcile_runs = Table(
    "reconcile_runs",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("environment", String(100), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("started_at", String(32), nullable=False),
    Column("finished_at", String(32)),
    Column("spec_digest", String(80), nullable=False),
    Column("git_commit", String(64)),
    Column("summary", Text, nullable=False),
    Index("ix_reconcile_runs_environment", "environment", "started_at"),
)

reconcile_steps = Table(
    "reconcile_steps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("action", String(20), nullable=False),
    Column("service", String(100)),
    Column("node", String(200), nullable=False),
    Column("identity", String(80)),
    Column("reason", String(100), nullable=False),
    Column("status", String(20), nullable=False),
    Column("started_at", String(32), nullable=False),
    Column("finished_at", String(32)),
    Column("detail", Text, nullable=False),
    Index("ix_reconcile_steps_run", "run_id", "seq"),
    Index("ix_reconcile_steps_node", "node"),
)

reconcile_nodes = Table(
    "reconcile_nodes",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("environment", String(100), nullable=False),
    Column("service", String(100), nullable=False),
    Column("identity", String(80), nullable=False),
    Column("image_digest", String(80), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("spec", Text, nullable=False),
    Column("facts_digest", String(80)),
    Column("created_at", String(32), nullable=False),
    Column("destroyed_at", String(32)),
    Index("ix_reconcile_nodes_identity", "environment", "service", "identity"),
)

recoveries = Table(
    "recoveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("environment", String(100), nullable=False),
    Column("at_commit", String(64)),
    Column("drill", Boolean, nullable=False),
    Column("status", String(20), nullable=False),
    Column("started_at", String(32), nullable=False),
    Column("finished_at", String(32)),
    Column("rto_seconds", Float),
    Column("nodes", Integer, nullable=False),
)


fim_baselines = Table(
    "fim_baselines",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("path", Text, nullable=False),
    Column("digest", String(80), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("hostname", String(255), nullable=False),
    Column("entries", Integer, nullable=False),
    Column("algorithm", String(20), nullable=False),
    Column("source", Text, nullable=False),
    Index("ix_fim_baselines_path", "path"),
)

fim_runs = Table(
    "fim_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("baseline_digest", String(80), nullable=False),
    Column("started_at", String(32), nullable=False),
    Column("finished_at", String(32), nullable=False),
    Column("mode", String(10), nullable=False),
    Column("sample_position", Integer, nullable=False),
    Column("scanned", Integer, nullable=False),
    Column("hashed", Integer, nullable=False),
    Column("changes", Integer, nullable=False),
    Index("ix_fim_runs_baseline_digest", "baseline_digest"),
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("environment", String(100), nullable=False),
    Column("service", String(100), nullable=False),
    Column("node", String(200), nullable=False),
    Column("policy", String(20), nullable=False),
    Column("status", String(30), nullable=False),
    Column("step", String(30), nullable=False),
    Column("detected_at", String(32), nullable=False),
    Column("opened_at", String(32), nullable=False),
    Column("resolved_at", String(32)),
    Column("ttd_seconds", Float),
    Column("ttr_seconds", Float),
    Column("replacement", String(200)),
    Column("evidence", String(80)),
    Column("findings", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Index("ix_incidents_node", "node"),
    Index("ix_incidents_environment", "environment", "opened_at"),
)
