"""Renderers of a :class:`~zerodrift.comply.report.Report`, one per format.

``render(report, fmt)`` returns the document as text. JSON is the report's
own dict; the others live in their modules: ``csv`` (one row per item),
``html`` (a self-contained page), ``oscal`` (OSCAL 1.1 assessment results),
``oscal-components`` (an OSCAL component definition of zerodrift's controls)
and ``sarif`` (SARIF 2.1.0, one result per failed control).
"""

from __future__ import annotations

import json

from zerodrift.comply.report import REPORT_KIND, REPORT_SCHEMA_VERSION, Report

__all__ = ["DOCUMENT_FORMATS", "MEDIA_TYPES", "render"]

DOCUMENT_FORMATS = ("json", "csv", "html", "oscal", "oscal-components", "sarif")

MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv",
    "html": "text/html",
    "oscal": "application/oscal.assessment-results+json",
    "oscal-components": "application/oscal.component-definition+json",
    "sarif": "application/sarif+json",
}


def render(report: Report, fmt: str, *, run_id: str | None = None) -> str:
    """Render ``report`` in ``fmt`` (one of :data:`DOCUMENT_FORMATS`).

    Raises:
        ValueError: ``fmt`` is not a document format.
    """
    if fmt == "json":
        document = {
            "schema_version": REPORT_SCHEMA_VERSION,
            "kind": REPORT_KIND,
            "run": run_id,
            **report.to_dict(),
        }
        return json.dumps(document, indent=2) + "\n"
    if fmt == "csv":
        from zerodrift.comply.formats.tabular import to_csv

        return to_csv(report)
    if fmt == "html":
        from zerodrift.comply.formats.html import to_html

        return to_html(report, run_id=run_id)
    if fmt == "oscal":
        from zerodrift.comply.formats.oscal import assessment_results

        return assessment_results(report)
    if fmt == "oscal-components":
        from zerodrift.comply.formats.oscal import component_definition

        return component_definition(report)
    if fmt == "sarif":
        from zerodrift.comply.formats.sarif import to_sarif

        return to_sarif(report)
    raise ValueError(f"not a document format: {fmt}")
