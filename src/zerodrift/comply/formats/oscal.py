"""OSCAL 1.1: assessment results of a report, and zerodrift's component definition.

Both documents are built as plain OSCAL JSON and then loaded into
``compliance-trestle``'s OSCAL models before they are returned, so zerodrift
never emits a document that does not validate.

Mapping of a report onto assessment results:

- each control result becomes an *observation* (method ``TEST``) whose
  relevant evidence lists the records it rests on; each attestation becomes
  an observation with method ``INTERVIEW``;
- each framework item with a verdict becomes a *finding* whose target state
  is ``satisfied`` (automated-pass, attested) or ``not-satisfied``
  (automated-fail, attestation expired or missing), linked to its
  observations; zerodrift's own status is kept as a namespaced property;
- not-covered items get no finding: nothing was assessed, so OSCAL's two
  states would both overstate what is known.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from zerodrift import __version__
from zerodrift.comply.coverage import ItemStatus, Status
from zerodrift.comply.report import Report
from zerodrift.errors import OperationalError

__all__ = ["OSCAL_NS", "OSCAL_VERSION", "assessment_results", "component_definition"]

OSCAL_VERSION = "1.1.2"
OSCAL_NS = "https://zerodrift.dev/ns/oscal"
_UUID_NS = uuid.UUID("4b0e8a57-6f0c-5d0e-9c55-7a3d7f1c2e10")

_SATISFIED = {Status.PASS, Status.ATTESTED}
_NOT_SATISFIED = {Status.FAIL, Status.EXPIRED, Status.MISSING}

_SOURCES = {
    "csf-2.0": "https://doi.org/10.6028/NIST.CSWP.29",
    "csf-1.1": "https://doi.org/10.6028/NIST.CSWP.04162018",
    "sp800-53r5": "https://doi.org/10.6028/NIST.SP.800-53r5",
}


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(_UUID_NS, "/".join(parts)))


def control_id(framework: str, item_id: str) -> str:
    """The OSCAL control id of an item (SP 800-53 uses ``ac-2.3`` for AC-2(3))."""
    if framework != "sp800-53r5":
        return item_id
    base, _, enhancement = item_id.partition("(")
    family, _, number = base.partition("-")
    suffix = f".{int(enhancement.rstrip(')'))}" if enhancement else ""
    return f"{family.lower()}-{int(number)}{suffix}"


def _metadata(title: str, report: Report) -> dict[str, Any]:
    return {
        "title": title,
        "last-modified": report.generated_at,
        "version": __version__,
        "oscal-version": OSCAL_VERSION,
    }


def assessment_results(report: Report) -> str:
    """Render ``report`` as an OSCAL 1.1 ``assessment-results`` document.

    Raises:
        OperationalError: The document does not validate against
            compliance-trestle's models (a bug in this renderer).
    """
    key = report.coverage.framework.key
    seed = f"{report.generated_at}/{key}/{report.environment}"
    observations, by_control = _control_observations(report, seed)
    attest_obs, by_attestation = _attestation_observations(report, seed)
    findings = [
        _finding(status, key, seed, by_control, by_attestation)
        for status in report.coverage.items
        if status.status in _SATISFIED | _NOT_SATISFIED
    ]
    plan = _uuid(seed, "assessment-plan")
    counts = report.coverage.counts()
    result: dict[str, Any] = {
        "uuid": _uuid(seed, "result"),
        "title": f"zerodrift {key} assessment",
        "description": (
            f"Automated evaluation of recorded evidence as of {report.as_of}"
            + (f" for environment {report.environment}" if report.environment else "")
        ),
        "start": report.as_of,
        "end": report.generated_at,
        "props": [
            {"name": status, "ns": OSCAL_NS, "value": str(count), "class": "count"}
            for status, count in counts.items()
        ],
        "reviewed-controls": {"control-selections": [{"include-all": {}}]},
        "observations": observations + attest_obs,
        "remarks": (
            f"{counts['not-covered']} items are not covered by evidence and have "
            "no finding."
        ),
    }
    if findings:
        result["findings"] = findings
    if not result["observations"]:
        del result["observations"]
    document = {
        "uuid": _uuid(seed, "document"),
        "metadata": _metadata(f"zerodrift compliance report: {key}", report),
        "import-ap": {"href": f"#{plan}"},
        "results": [result],
        "back-matter": {
            "resources": [
                {
                    "uuid": plan,
                    "title": "Assessment plan",
                    "description": (
                        "zerodrift evaluates every registered control over the "
                        "evidence recorded in its state database."
                    ),
                }
            ]
        },
    }
    return _validated("assessment-results", document)


def _control_observations(
    report: Report, seed: str
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    observations, index = [], {}
    for result in report.coverage.results:
        ident = _uuid(seed, "control", result.control)
        index[result.control] = ident
        observation: dict[str, Any] = {
            "uuid": ident,
            "title": result.control,
            "description": result.summary or result.control,
            "props": [
                {"name": "outcome", "ns": OSCAL_NS, "value": result.outcome.value}
            ],
            "methods": ["TEST"],
            "collected": report.generated_at,
        }
        evidence = [
            {
                "description": f"{ref.kind} {ref.id}"
                + (f": {ref.note}" if ref.note else "")
            }
            for ref in result.evidence
        ]
        if evidence:
            observation["relevant-evidence"] = evidence
        observations.append(observation)
    return observations, index


def _attestation_observations(
    report: Report, seed: str
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    observations, index = [], {}
    for attestation in report.attestations:
        ident = _uuid(seed, "attestation", attestation.subcategory)
        index[attestation.subcategory] = ident
        evidence = [{"description": ref} for ref in attestation.references]
        observation: dict[str, Any] = {
            "uuid": ident,
            "title": f"attestation of {attestation.subcategory}",
            "description": attestation.statement,
            "methods": ["INTERVIEW"],
            "collected": f"{attestation.date.isoformat()}T00:00:00Z",
            "expires": f"{attestation.expires.isoformat()}T00:00:00Z",
            # Who attested goes in remarks: an OSCAL party would need a roster.
            "remarks": f"attested by {attestation.by}",
        }
        if evidence:
            observation["relevant-evidence"] = evidence
        observations.append(observation)
    return observations, index


def _finding(
    status: ItemStatus,
    framework: str,
    seed: str,
    by_control: dict[str, str],
    by_attestation: dict[str, str],
) -> dict[str, Any]:
    related = [by_control[c] for c in status.controls if c in by_control]
    sources = [s for s, _ in status.sources] or [status.item.id]
    related += [by_attestation[s] for s in sources if s in by_attestation]
    state = "satisfied" if status.status in _SATISFIED else "not-satisfied"
    finding: dict[str, Any] = {
        "uuid": _uuid(seed, "finding", status.item.id),
        "title": f"{status.item.id}: {status.status.value}",
        "description": status.reason,
        "props": [{"name": "status", "ns": OSCAL_NS, "value": status.status.value}],
        "target": {
            "type": "objective-id",
            "target-id": control_id(framework, status.item.id),
            "status": {"state": state},
        },
    }
    if related:
        finding["related-observations"] = [
            {"observation-uuid": u} for u in dict.fromkeys(related)
        ]
    return finding


def component_definition(report: Report) -> str:
    """Describe zerodrift and its controls as an OSCAL ``component-definition``.

    Raises:
        OperationalError: The document does not validate (a bug).
    """
    controls = report.control_dicts()
    seed = "zerodrift-components"
    implementations = []
    for key, field in (("csf-2.0", "csf_2_0"), ("sp800-53r5", "sp800_53r5")):
        evidenced: dict[str, list[str]] = {}
        for entry in controls:
            for target in entry[field]:
                evidenced.setdefault(target, []).append(entry["id"])
        implementations.append(
            {
                "uuid": _uuid(seed, key),
                "source": _SOURCES[key],
                "description": f"zerodrift's automated controls, mapped to {key}",
                "implemented-requirements": [
                    {
                        "uuid": _uuid(seed, key, target),
                        "control-id": control_id(key, target),
                        "description": "Evidenced by zerodrift controls: "
                        + ", ".join(sorted(ids)),
                        "props": [
                            {"name": "control", "ns": OSCAL_NS, "value": ident}
                            for ident in sorted(ids)
                        ],
                    }
                    for target, ids in sorted(evidenced.items())
                ],
            }
        )
    document = {
        "uuid": _uuid(seed, __version__),
        "metadata": _metadata("zerodrift automated controls", report),
        "components": [
            {
                "uuid": _uuid(seed, "component"),
                "type": "software",
                "title": "zerodrift",
                "description": (
                    "Immutable-infrastructure tooling whose recorded evidence "
                    "(inventory, audit trail, spec revisions, findings, trust "
                    "policy) is evaluated by the controls listed here."
                ),
                "control-implementations": implementations,
            }
        ],
    }
    return _validated("component-definition", document)


def _validated(root: str, document: dict[str, Any]) -> str:
    from pydantic import ValidationError
    from trestle.oscal import assessment_results as ar
    from trestle.oscal import component as cd

    model = (
        ar.AssessmentResults if root == "assessment-results" else cd.ComponentDefinition
    )
    try:
        model.model_validate(document)
    except ValidationError as exc:
        raise OperationalError(
            f"generated OSCAL {root} does not validate: {exc.errors()[0]}",
            hint="this is a bug in zerodrift; rerun with -v and report it",
            reference="oscal-invalid",
        ) from exc
    return json.dumps({root: document}, indent=2) + "\n"
