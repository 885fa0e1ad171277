"""Govern: the tamper-evident audit trail and (later) trust and response policy."""
