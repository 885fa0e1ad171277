"""CSV: one row per framework item, for spreadsheets."""

from __future__ import annotations

import csv
import io

from zerodrift.comply.report import Report

__all__ = ["to_csv"]

COLUMNS = (
    "framework",
    "function",
    "category",
    "id",
    "status",
    "reason",
    "controls",
    "evidence",
    "attested_by",
    "attestation_expires",
    "text",
)


def to_csv(report: Report) -> str:
    """Render items as CSV (RFC 4180, header row, CRLF line ends)."""
    results = {r.control: r for r in report.coverage.results}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for status in report.coverage.items:
        refs = [
            f"{ref.kind}:{ref.id}"
            for control in status.controls
            for ref in results[control].evidence
        ]
        attestation = status.attestation
        writer.writerow(
            (
                report.coverage.framework.key,
                status.item.function,
                status.item.category,
                status.item.id,
                status.status.value,
                status.reason,
                " ".join(status.controls),
                " ".join(refs),
                attestation.by if attestation else "",
                attestation.expires.isoformat() if attestation else "",
                status.item.text,
            )
        )
    return out.getvalue()
