"""HTML: one self-contained page (no external assets) to read a report.

The page template is package data (``comply/templates/report.html``); the
report's JSON is embedded in it and drawn by a small inline script: a
coverage bar per function, a heatmap of every item, and a drill-down from
an item to its controls, their evidence, and its attestation.
"""

from __future__ import annotations

import html
import json
from importlib import resources

from zerodrift.comply.report import Report

__all__ = ["to_html"]


def _template() -> str:
    return (
        resources.files("zerodrift.comply")
        .joinpath("templates/report.html")
        .read_text(encoding="utf-8")
    )


def to_html(report: Report, *, run_id: str | None = None) -> str:
    """Render ``report`` as a standalone HTML page."""
    data = {"run": run_id, **report.to_dict()}
    # "</" inside a script element would end it early; JSON allows "<\/".
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    title = f"zerodrift {report.coverage.framework.key} report, {report.as_of}"
    page = _template().replace("{{TITLE}}", html.escape(title))
    return page.replace("{{REPORT_DATA}}", payload)
