"""FIM rules: which paths to watch, which attributes to compare, how severe.

The rules file is YAML (format described in ``docs/fim.md`` and ADR 0041)::

    version: 1
    algorithm: sha256          # sha256 | sha512 | blake3
    one_filesystem: true       # do not descend into other mounts
    sample_period: 7d          # fast checks verify every file within this
    exclude: ["*.pyc"]         # globs, for every path
    xattr_names: null          # or a list: only these xattrs are compared
    paths:
      - path: /usr/bin
        severity: high
      - path: /var/log         # a folder inside another rule overrides it
        attributes: [perms]
        severity: low
        exclude: ["*.gz"]

A path is governed by the rule with the longest ``path`` that contains it.
Globs use shell syntax matched against the whole path, where ``*`` also
matches ``/``; a glob without ``/`` matches the last name only.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from zerodrift.detect.findings import Severity
from zerodrift.errors import ConfigError, Location

__all__ = [
    "ALGORITHMS",
    "ATTRIBUTES",
    "Rule",
    "RuleSet",
    "default_rules",
    "load_rules",
    "parse_rules",
    "rules_for_paths",
]

ATTRIBUTES = (
    "type",
    "mode",
    "uid",
    "gid",
    "inode",
    "nlink",
    "size",
    "mtime",
    "ctime",
    "hash",
    "target",
    "xattrs",
    "rdev",
)
"""Every attribute a rule can compare, in report order."""

GROUPS: dict[str, tuple[str, ...]] = {
    "all": ATTRIBUTES,
    "content": ("type", "size", "hash", "target"),
    "perms": ("type", "mode", "uid", "gid", "xattrs"),
    "metadata": tuple(a for a in ATTRIBUTES if a != "hash"),
}
"""Names that stand for several attributes."""

ALGORITHMS = ("sha256", "sha512", "blake3")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_TOP_KEYS = {
    "version",
    "algorithm",
    "one_filesystem",
    "sample_period",
    "exclude",
    "xattr_names",
}
_RULE_KEYS = {"path", "attributes", "severity", "exclude"}


@dataclass(frozen=True)
class Rule:
    """What to compare for the paths under ``path``.

    Attributes:
        path: An absolute folder or file path.
        attributes: Attribute names compared for entries under it.
        severity: Severity of a change found under it.
        exclude: Globs of paths to skip under it.
    """

    path: str
    attributes: frozenset[str]
    severity: Severity = Severity.MEDIUM
    exclude: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Render as plain data (embedded in the signed baseline)."""
        return {
            "path": self.path,
            "attributes": [a for a in ATTRIBUTES if a in self.attributes],
            "severity": self.severity.label,
            "exclude": list(self.exclude),
        }


@dataclass
class RuleSet:
    """A parsed rules file with fast lookups for the scanner."""

    rules: tuple[Rule, ...]
    algorithm: str = "sha256"
    one_filesystem: bool = True
    sample_period: int = 7 * 86400
    exclude: tuple[str, ...] = ()
    xattr_names: tuple[str, ...] | None = None
    _by_path: dict[bytes, tuple[Rule, re.Pattern[str] | None]] = field(
        init=False, repr=False
    )

    def __post_init__(self) -> None:
        self._by_path = {
            r.path.encode(): (r, _compile((*self.exclude, *r.exclude)))
            for r in self.rules
        }

    @property
    def roots(self) -> list[bytes]:
        """Rule paths not inside another rule's path: where the walk starts."""
        paths = sorted(self._by_path, key=sort_key)
        roots: list[bytes] = []
        for path in paths:
            if not any(_inside(path, root) for root in roots):
                roots.append(path)
        return roots

    def rule_at(self, path: bytes) -> tuple[Rule, re.Pattern[str] | None] | None:
        """The rule that starts exactly at ``path``, if any."""
        return self._by_path.get(path)

    def lookup(self, path: bytes) -> tuple[Rule, re.Pattern[str] | None] | None:
        """The most specific rule governing ``path`` (None: not watched)."""
        probe = path
        while True:
            found = self._by_path.get(probe)
            if found is not None:
                return found
            if probe in (b"/", b""):
                return None
            probe = probe.rsplit(b"/", 1)[0] or b"/"

    def to_dict(self) -> dict[str, Any]:
        """Render as plain data (embedded in the signed baseline)."""
        return {
            "version": 1,
            "algorithm": self.algorithm,
            "one_filesystem": self.one_filesystem,
            "sample_period": self.sample_period,
            "exclude": list(self.exclude),
            **(
                {"xattr_names": list(self.xattr_names)}
                if self.xattr_names is not None
                else {}
            ),
            "paths": [r.to_dict() for r in self.rules],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str = "<rules>") -> RuleSet:
        """Build from plain data, validating every field.

        Raises:
            ConfigError: A field is missing, unknown or has a bad value.
        """
        return _build(data, name, positions=None)


def sort_key(path: bytes) -> bytes:
    """The order of baselines and walks: depth first, names byte-sorted."""
    return path.replace(b"/", b"\x00")


def excluded(pattern: re.Pattern[str] | None, path: bytes) -> bool:
    """Whether ``path`` matches the compiled exclude globs."""
    if pattern is None:
        return False
    return pattern.match(path.decode("utf-8", "surrogateescape")) is not None


def load_rules(path: Path) -> RuleSet:
    """Read and validate a rules file.

    Raises:
        ConfigError: The file cannot be read or is invalid (with its line).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read rules file {path}: {exc}",
            hint="pass a readable UTF-8 YAML file to --rules",
            reference="fim-rules-unreadable",
        ) from exc
    return parse_rules(text, str(path))


def parse_rules(text: str, name: str) -> RuleSet:
    """Parse rules from YAML text; ``name`` is used in error locations.

    Raises:
        ConfigError: The YAML is malformed or a field is invalid.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        data = YAML(typ="rt").load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(
            f"rules file is not valid YAML: {getattr(exc, 'problem', exc)}",
            location=Location(name, line),
            reference="fim-rules-invalid",
        ) from exc
    return _build(data, name, positions=data)


def default_rules() -> RuleSet:
    """The shipped rules for a Debian host (``default-rules.yaml``)."""
    text = resources.files(__package__).joinpath("default-rules.yaml").read_text()
    return parse_rules(text, "default-rules.yaml")


def rules_for_paths(
    paths: list[str], base: RuleSet | None = None, severity: Severity | None = None
) -> RuleSet:
    """Rules watching ``paths`` with every attribute (plus ``base``'s rules)."""
    rules = list(base.rules) if base else []
    known = {r.path for r in rules}
    for raw in paths:
        path = _normalise(raw)
        if path not in known:
            rules.append(Rule(path, frozenset(ATTRIBUTES), severity or Severity.MEDIUM))
    if base is None:
        return RuleSet(tuple(rules))
    return dataclasses.replace(base, rules=tuple(rules))


def _normalise(raw: str) -> str:
    resolved = str(Path(raw).absolute())
    return resolved.rstrip("/") or "/"


def _inside(path: bytes, root: bytes) -> bool:
    return path == root or path.startswith(root.rstrip(b"/") + b"/")


def _compile(globs: tuple[str, ...]) -> re.Pattern[str] | None:
    if not globs:
        return None
    parts = []
    for glob in globs:
        body = fnmatch.translate(glob)
        parts.append(body if "/" in glob else f"(?:.*/)?{body}")
    return re.compile("|".join(f"(?:{p})" for p in parts))


def _build(data: Any, name: str, positions: Any) -> RuleSet:
    where = _Where(name, positions)
    if not isinstance(data, dict):
        raise where.error("the rules file must be a mapping", ())
    unknown = set(data) - _TOP_KEYS - {"paths"}
    if unknown:
        key = sorted(unknown)[0]
        raise where.error(
            f"unknown setting {key!r}",
            (key,),
            hint=f"known: {', '.join(sorted(_TOP_KEYS | {'paths'}))}",
        )
    if data.get("version", 1) != 1:
        raise where.error("only rules format version 1 exists", ("version",))
    algorithm = str(data.get("algorithm", "sha256"))
    if algorithm not in ALGORITHMS:
        raise where.error(
            f"unknown hash algorithm {algorithm!r}",
            ("algorithm",),
            hint=f"use one of {', '.join(ALGORITHMS)}",
        )
    entries = data.get("paths")
    if not isinstance(entries, list) or not entries:
        raise where.error("'paths' must be a non-empty list of rules", ("paths",))
    rules = tuple(_rule(item, where, index) for index, item in enumerate(entries))
    return RuleSet(
        rules,
        algorithm,
        bool(data.get("one_filesystem", True)),
        _period(data.get("sample_period", "7d"), where),
        _globs(data.get("exclude", []), where, ("exclude",)),
        _names(data.get("xattr_names"), where),
    )


def _names(value: Any, where: _Where) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise where.error(
            "'xattr_names' must be a list of extended attribute names",
            ("xattr_names",),
        )
    return tuple(value)


def _rule(item: Any, where: _Where, index: int) -> Rule:
    at = ("paths", index)
    if not isinstance(item, dict) or "path" not in item:
        raise where.error("each rule needs a 'path'", at)
    unknown = set(item) - _RULE_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise where.error(
            f"unknown rule key {key!r}",
            (*at, key),
            hint=f"known: {', '.join(sorted(_RULE_KEYS))}",
        )
    path = str(item["path"])
    if not path.startswith("/"):
        raise where.error(f"rule path {path!r} must be absolute", (*at, "path"))
    severity_text = str(item.get("severity", "medium"))
    try:
        severity = Severity.parse(severity_text)
    except KeyError:
        raise where.error(
            f"unknown severity {severity_text!r}",
            (*at, "severity"),
            hint="use info, low, medium, high or critical",
        ) from None
    return Rule(
        path.rstrip("/") or "/",
        _attributes(item.get("attributes", "all"), where, (*at, "attributes")),
        severity,
        _globs(item.get("exclude", []), where, (*at, "exclude")),
    )


def _attributes(value: Any, where: _Where, at: tuple[Any, ...]) -> frozenset[str]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list):
        raise where.error("'attributes' must be a name or a list of names", at)
    chosen: set[str] = set()
    for name in names:
        if name in GROUPS:
            chosen.update(GROUPS[str(name)])
        elif name in ATTRIBUTES:
            chosen.add(str(name))
        else:
            raise where.error(
                f"unknown attribute {name!r}",
                at,
                hint=f"use {', '.join(ATTRIBUTES)} or {', '.join(GROUPS)}",
            )
    return frozenset(chosen)


def _globs(value: Any, where: _Where, at: tuple[Any, ...]) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise where.error("'exclude' must be a list of glob strings", at)
    return tuple(value)


def _period(value: Any, where: _Where) -> int:
    if isinstance(value, int) and value > 0:
        return value
    match = re.fullmatch(r"(\d+)([smhd])", str(value))
    if match is None or int(match.group(1)) == 0:
        raise where.error(
            f"bad sample_period {value!r}",
            ("sample_period",),
            hint="use seconds or a number with s, m, h or d, such as 7d",
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


@dataclass
class _Where:
    name: str
    document: Any

    def error(
        self, message: str, at: tuple[Any, ...], hint: str | None = None
    ) -> ConfigError:
        return ConfigError(
            message,
            hint=hint,
            location=Location(
                self.name, self._line(at), field=".".join(map(str, at)) or None
            ),
            reference="fim-rules-invalid",
        )

    def _line(self, at: tuple[Any, ...]) -> int | None:
        node = self.document
        line: int | None = None
        for part in at:
            lc = getattr(node, "lc", None)
            try:
                if isinstance(part, int):
                    line = lc.item(part)[0] + 1 if lc else line
                else:
                    line = lc.key(part)[0] + 1 if lc else line
                node = node[part]
            except (KeyError, IndexError, TypeError, AttributeError):
                break
        return line
