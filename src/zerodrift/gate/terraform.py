"""Terraform plans (``terraform show -json`` output) and the rules over them.

Reading is strict: a plan that is truncated, malformed, of an unknown format
version, or not a plan at all is an error naming the file and position,
never an empty plan that passes. The rules are pure functions over the
parsed :class:`Plan`.

The format is Terraform's "JSON output format" (format_version 1.x, also
written by OpenTofu): ``resource_changes[]`` entries carry ``address``,
``mode``, ``type`` and ``change.actions``, one of ``["no-op"]``,
``["create"]``, ``["read"]``, ``["update"]``, ``["delete"]``,
``["delete", "create"]`` / ``["create", "delete"]`` (replace) or
``["forget"]``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zerodrift.errors import ConfigError, Location
from zerodrift.gate.results import Check
from zerodrift.spec.models import TerraformPolicy

__all__ = [
    "MAX_PLAN_BYTES",
    "Plan",
    "ResourceChange",
    "check_plan",
    "load_plan",
    "parse_plan",
]

MAX_PLAN_BYTES = 256 * 1024 * 1024
_ACTIONS = frozenset({"no-op", "create", "read", "update", "delete", "forget"})
_QUIET = frozenset({("no-op",), ("read",)})
_ADDRESS_RE = re.compile(r'"address"\s*:\s*"((?:[^"\\]|\\.)*)"')
_INSTANCE_KEY_RE = re.compile(r"\[[^\]]*\]")


@dataclass(frozen=True)
class ResourceChange:
    """One planned change of one resource instance.

    Attributes:
        address: Full address (``module.app.aws_instance.web[0]``).
        type: Resource type (``aws_instance``).
        mode: ``managed`` or ``data``.
        actions: Terraform's action list (``("delete", "create")``).
        changed: Top-level attributes that differ, for in-place updates.
        line: Line of the entry in the plan file, when found.
    """

    address: str
    type: str
    mode: str
    actions: tuple[str, ...]
    changed: tuple[str, ...] = ()
    line: int | None = None

    @property
    def is_change(self) -> bool:
        """True unless the entry is a no-op or a data read."""
        return self.actions not in _QUIET


@dataclass(frozen=True)
class Plan:
    """A parsed plan: where it came from and its resource changes."""

    path: str
    format_version: str
    changes: tuple[ResourceChange, ...]

    def location(self, change: ResourceChange) -> Location:
        """Where ``change`` is written in the plan file."""
        return Location(self.path, change.line, None if change.line is None else 1)


def load_plan(path: Path, name: str | None = None) -> Plan:
    """Read and parse a plan file; ``name`` is how reports refer to it.

    Raises:
        ConfigError: The file is unreadable, too large, malformed, of an
            unknown format version, or not a plan.
    """
    shown = name or str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_PLAN_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            f"cannot read plan {shown}: {exc.strerror}",
            hint="pass the output of 'terraform show -json PLANFILE > plan.json'",
            location=Location(shown),
            reference="plan-unreadable",
        ) from exc
    return parse_plan(raw, shown)


def parse_plan(raw: bytes, name: str) -> Plan:
    """Parse plan JSON bytes; ``name`` is how errors refer to them.

    Raises:
        ConfigError: As for :func:`load_plan`.
    """
    if len(raw) > MAX_PLAN_BYTES:
        raise ConfigError(
            f"plan {name} is larger than {MAX_PLAN_BYTES // 2**20} MiB",
            hint="split the configuration, or gate each root module's plan",
            location=Location(name),
            reference="plan-too-large",
        )
    try:
        text = raw.decode("utf-8")
        document = json.loads(text)
    except UnicodeDecodeError as exc:
        raise _malformed(name, raw[: exc.start], "not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        where = Location(name, exc.lineno, exc.colno)
        raise ConfigError(
            f"plan {name} is not valid JSON: {exc.msg}",
            hint="the file is malformed or truncated; regenerate it with "
            "'terraform show -json PLANFILE > plan.json'",
            location=where,
            reference="plan-malformed",
        ) from None
    version = _check_header(document, name)
    lines = _address_lines(text)
    entries = document.get("resource_changes") or []
    if not isinstance(entries, list):
        raise _shape(name, "resource_changes is not a list", None)
    changes = tuple(
        _change(entry, index, name, lines) for index, entry in enumerate(entries)
    )
    return Plan(name, version, changes)


def _malformed(name: str, before: bytes, what: str) -> ConfigError:
    line = before.count(b"\n") + 1
    column = len(before) - (before.rfind(b"\n") + 1) + 1
    return ConfigError(
        f"plan {name} is {what}",
        hint="regenerate it with 'terraform show -json PLANFILE > plan.json'",
        location=Location(name, line, column),
        reference="plan-malformed",
    )


def _shape(name: str, what: str, line: int | None) -> ConfigError:
    return ConfigError(
        f"plan {name}: {what}",
        hint="the file does not follow Terraform's JSON plan format; regenerate "
        "it with 'terraform show -json PLANFILE > plan.json'",
        location=Location(name, line),
        reference="plan-malformed",
    )


def _check_header(document: Any, name: str) -> str:
    if not isinstance(document, dict) or "format_version" not in document:
        raise ConfigError(
            f"{name} is not a Terraform plan in JSON",
            hint="pass 'terraform show -json PLANFILE' output, not the binary "
            "plan file or HCL",
            location=Location(name, 1, 1),
            reference="plan-not-a-plan",
        )
    version = document["format_version"]
    if not isinstance(version, str) or not re.fullmatch(r"1\.\d+", version):
        raise ConfigError(
            f"plan {name} has format_version {version!r}, which zerodrift "
            "does not read",
            hint="zerodrift reads plan format 1.x (Terraform 1.0 or later, "
            "OpenTofu); upgrade Terraform or report the new version",
            location=Location(name, field="format_version"),
            reference="plan-format-unsupported",
        )
    if "resource_changes" not in document and "planned_values" not in document:
        raise ConfigError(
            f"{name} is a Terraform state, not a plan",
            hint="run 'terraform plan -out=PLANFILE' and pass "
            "'terraform show -json PLANFILE'",
            location=Location(name, 1, 1),
            reference="plan-not-a-plan",
        )
    return version


def _address_lines(text: str) -> dict[str, int]:
    """Line of each address's first mention inside ``resource_changes``.

    One regular-expression pass instead of a position-aware JSON parser;
    ``resource_drift`` and ``planned_values`` come before it and are skipped.
    """
    start = text.find('"resource_changes"')
    if start < 0:
        return {}
    lines: dict[str, int] = {}
    line, last = text.count("\n", 0, start) + 1, start
    for match in _ADDRESS_RE.finditer(text, start):
        line += text.count("\n", last, match.start())
        last = match.start()
        address = match.group(1)
        if "\\" in address:
            address = json.loads(f'"{address}"')
        lines.setdefault(address, line)
    return lines


def _change(entry: Any, index: int, name: str, lines: dict[str, int]) -> ResourceChange:
    where = f"resource_changes[{index}]"
    if not isinstance(entry, dict):
        raise _shape(name, f"{where} is not an object", None)
    address, rtype = entry.get("address"), entry.get("type")
    change = entry.get("change")
    if not isinstance(address, str) or not isinstance(rtype, str):
        raise _shape(name, f"{where} lacks address or type", None)
    line = lines.get(address)
    if not isinstance(change, dict) or not isinstance(change.get("actions"), list):
        raise _shape(name, f"{where} ({address}) lacks change.actions", line)
    actions = tuple(change["actions"])
    if not actions or any(a not in _ACTIONS for a in actions):
        raise _shape(name, f"{address}: unknown actions {list(actions)}", line)
    changed = _changed_attributes(change) if actions == ("update",) else ()
    mode = entry.get("mode", "managed")
    return ResourceChange(address, rtype, str(mode), actions, changed, line)


def _changed_attributes(change: dict[str, Any]) -> tuple[str, ...]:
    before = change.get("before") or {}
    after = change.get("after") or {}
    unknown = change.get("after_unknown") or {}
    if not isinstance(before, dict) or not isinstance(after, dict):
        return ()
    keys = set(before) | set(after)
    differ = {k for k in keys if before.get(k) != after.get(k)}
    if isinstance(unknown, dict):
        differ |= {k for k, v in unknown.items() if v is True}
    return tuple(sorted(differ))


def check_plan(plan: Plan, policy: TerraformPolicy) -> list[Check]:
    """Evaluate ``plan-immutable-update`` and ``plan-inventory`` over ``plan``."""
    checks: list[Check] = []
    immutable = policy.immutable()
    patterns = _compile(policy.inventory)
    if patterns is None:
        checks.append(
            Check(
                "plan-inventory",
                plan.path,
                None,
                "no inventory declared (policy.terraform.inventory)",
                Location(plan.path),
                "declare the resource addresses this fleet manages",
            )
        )
    for change in plan.changes:
        if change.mode != "managed" or not change.is_change:
            continue
        if change.type in immutable:
            checks.append(_immutable_check(plan, change))
        if patterns is not None:
            checks.append(_inventory_check(plan, change, patterns))
    return checks


def _immutable_check(plan: Plan, change: ResourceChange) -> Check:
    verb = _describe(change.actions)
    if change.actions != ("update",):
        return Check(
            "plan-immutable-update",
            change.address,
            True,
            f"{change.address} is {verb}",
            plan.location(change),
        )
    what = f" (changes {', '.join(change.changed)})" if change.changed else ""
    return Check(
        "plan-immutable-update",
        change.address,
        False,
        f"{change.address} ({change.type}) would be updated in place{what}",
        plan.location(change),
        f"replace it instead: terraform apply -replace={change.address}, or add "
        "lifecycle.replace_triggered_by so the change forces a new resource",
    )


def _inventory_check(
    plan: Plan, change: ResourceChange, patterns: list[re.Pattern[str]]
) -> Check:
    bare = _INSTANCE_KEY_RE.sub("", change.address)
    declared = any(p.fullmatch(change.address) or p.fullmatch(bare) for p in patterns)
    verb = _describe(change.actions)
    if declared:
        return Check(
            "plan-inventory",
            change.address,
            True,
            f"{change.address} is declared ({verb})",
            plan.location(change),
        )
    return Check(
        "plan-inventory",
        change.address,
        False,
        f"{change.address} would be {verb} but is not in the declared inventory",
        plan.location(change),
        f"add {bare!r} to policy.terraform.inventory if the fleet owns it, "
        "or remove it from the configuration",
    )


def _compile(patterns: list[str] | None) -> list[re.Pattern[str]] | None:
    if patterns is None:
        return None
    return [
        re.compile(".*".join(re.escape(p) for p in pat.split("*"))) for pat in patterns
    ]


def _describe(actions: tuple[str, ...]) -> str:
    if set(actions) == {"delete", "create"}:
        return "replaced"
    words = {"create": "created", "update": "updated", "delete": "deleted"}
    return " and ".join(words.get(a, a) for a in actions)
