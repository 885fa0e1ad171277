"""Comply: NIST CSF 2.0 / CSF 1.1 / SP 800-53 coverage from recorded evidence.

The pipeline, one module per step:

- :mod:`~zerodrift.comply.catalogs`: NIST reference data (package data,
  checked against ``SHA256SUMS`` and NIST's published counts);
- :mod:`~zerodrift.comply.evidence`: what was recorded, as of a time;
- :mod:`~zerodrift.comply.registry` and :mod:`zerodrift.comply.controls`:
  automated controls over that evidence (pass, fail, not applicable);
- :mod:`~zerodrift.comply.attestations`: people's statements, from YAML;
- :mod:`~zerodrift.comply.coverage`: a status for every framework item;
- :mod:`~zerodrift.comply.report` and :mod:`zerodrift.comply.formats`: the
  report and its renderings; :mod:`~zerodrift.comply.runs`: run history.

Example::

    report = build_report(load_catalogs(), "csf-2.0", evidence, attestations,
                          generated_at=utc_now())
    print(render(report, "json"))
"""

from zerodrift.comply.catalogs import FRAMEWORKS, Catalogs, load_catalogs
from zerodrift.comply.evidence import Evidence
from zerodrift.comply.registry import Control, Outcome, Verdict, control
from zerodrift.comply.report import Report, build_report

__all__ = [
    "FRAMEWORKS",
    "Catalogs",
    "Control",
    "Evidence",
    "Outcome",
    "Report",
    "Verdict",
    "build_report",
    "control",
    "load_catalogs",
]
