"""Produce a compliance report: run the controls, weigh attestations, cover.

The pipeline is evidence -> control results -> coverage -> rendering. This
module does the first three and returns a :class:`Report`, a plain value
that every renderer (:mod:`zerodrift.comply.formats`) and the run history
(:mod:`zerodrift.comply.runs`) read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zerodrift import __version__
from zerodrift.comply.attestations import Attestation
from zerodrift.comply.catalogs import Catalogs
from zerodrift.comply.coverage import Coverage, evaluate_coverage
from zerodrift.comply.evidence import Evidence
from zerodrift.comply.registry import Control, Result, load_controls

__all__ = ["REPORT_KIND", "REPORT_SCHEMA_VERSION", "Report", "build_report"]

REPORT_KIND = "compliance-report"
# Versioned like every ``--format json`` document of the command line.
REPORT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Report:
    """A finished evaluation, ready to render."""

    coverage: Coverage
    catalogs: Catalogs
    attestations: tuple[Attestation, ...]
    generated_at: str
    as_of: str
    historical: bool
    environment: str | None
    fleet: str | None
    spec_digest: str | None

    @property
    def failed(self) -> bool:
        """Whether anything failed (the exit code says so)."""
        return self.coverage.failed

    def control_dicts(self) -> list[dict[str, Any]]:
        """Each control with its mappings and result."""
        results = {r.control: r for r in self.coverage.results}
        return [
            {
                "id": c.id,
                "title": c.title,
                "description": c.description,
                "csf_2_0": list(c.csf),
                "csf_1_1": list(self.catalogs.csf11_for(c.csf)),
                "sp800_53r5": list(self.catalogs.sp800_53_for(c.csf)),
                "result": results[c.id].to_dict(),
            }
            for c in self.coverage.controls
        ]

    def to_dict(self) -> dict[str, Any]:
        """Render the whole report as a JSON-ready dict."""
        framework = self.coverage.framework
        return {
            "framework": {
                "key": framework.key,
                "title": framework.title,
                "version": framework.version,
            },
            "generator": f"zerodrift {__version__}",
            "generated_at": self.generated_at,
            "as_of": self.as_of,
            "historical": self.historical,
            "environment": self.environment,
            "fleet": self.fleet,
            "spec_digest": self.spec_digest,
            "failed": self.failed,
            "summary": self.coverage.summary(),
            "functions": [
                {"id": f.id, "name": f.name, "text": f.text}
                for f in framework.functions
            ],
            "categories": [
                {"id": c.id, "name": c.name, "function": c.parent}
                for c in framework.categories
            ],
            "items": [s.to_dict() for s in self.coverage.items],
            "controls": self.control_dicts(),
            "attestations": [a.to_dict() for a in self.attestations],
        }


def build_report(
    catalogs: Catalogs,
    framework: str,
    evidence: Evidence,
    attestations: list[Attestation],
    *,
    generated_at: str,
    controls: tuple[Control, ...] | None = None,
) -> Report:
    """Evaluate every control over ``evidence`` and cover ``framework``.

    Raises:
        OperationalError: The database failed while reading evidence.
    """
    chosen = load_controls() if controls is None else controls
    results: list[Result] = [c.run(evidence) for c in chosen]
    coverage = evaluate_coverage(
        catalogs,
        framework,
        controls=chosen,
        results=results,
        attestations=attestations,
        as_of=evidence.as_of,
    )
    spec = evidence.spec_in_force
    return Report(
        coverage=coverage,
        catalogs=catalogs,
        attestations=tuple(attestations),
        generated_at=generated_at,
        as_of=evidence.as_of,
        historical=evidence.historical,
        environment=evidence.environment,
        fleet=spec.fleet.name if spec else None,
        spec_digest=spec.digest if spec else None,
    )
