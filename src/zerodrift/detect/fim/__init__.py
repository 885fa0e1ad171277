"""Host file integrity monitoring against signed baselines (``zerodrift fim``).

An AIDE-class checker: rules choose paths and attributes
(:mod:`~zerodrift.detect.fim.rules`), the scanner walks and hashes in worker
processes (:mod:`~zerodrift.detect.fim.scanner`), the baseline is a sorted,
signed JSON-lines file (:mod:`~zerodrift.detect.fim.baseline`), a merge walk
compares it with the live tree (:mod:`~zerodrift.detect.fim.compare`), and
kernel file events report changes as they happen
(:mod:`~zerodrift.detect.fim.watch`).

Example::

    rules = load_rules(Path("fim-rules.yaml"))
    statement, _ = create_baseline(Path("baseline.fim"), rules, signer)
    record_baseline(db, Path("baseline.fim"), statement)
    baseline = open_baseline(Path("baseline.fim"), trusted_keys)
    verify_current(db, baseline)
    report = run_check(db, baseline, full=False)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zerodrift.detect.fim.baseline import (
        PAYLOAD_TYPE,
        VerifiedBaseline,
        open_baseline,
    )
    from zerodrift.detect.fim.compare import Change, CheckStats
    from zerodrift.detect.fim.monitor import (
        CheckReport,
        accept_changes,
        create_baseline,
        record_baseline,
        run_check,
        to_findings,
        verify_current,
    )
    from zerodrift.detect.fim.rules import RuleSet, default_rules, load_rules

__all__ = [
    "PAYLOAD_TYPE",
    "Change",
    "CheckReport",
    "CheckStats",
    "RuleSet",
    "VerifiedBaseline",
    "accept_changes",
    "create_baseline",
    "default_rules",
    "load_rules",
    "open_baseline",
    "record_baseline",
    "run_check",
    "to_findings",
    "verify_current",
]

# Names are imported on first use, so a fast check can start its workers
# before the database layer is loaded (ADR 0044).
_HOME = {
    "PAYLOAD_TYPE": "baseline",
    "VerifiedBaseline": "baseline",
    "open_baseline": "baseline",
    "Change": "compare",
    "CheckStats": "compare",
    "CheckReport": "monitor",
    "accept_changes": "monitor",
    "create_baseline": "monitor",
    "record_baseline": "monitor",
    "run_check": "monitor",
    "to_findings": "monitor",
    "verify_current": "monitor",
    "RuleSet": "rules",
    "default_rules": "rules",
    "load_rules": "rules",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"zerodrift.detect.fim.{module}"), name)
