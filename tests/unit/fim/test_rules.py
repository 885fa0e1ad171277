"""The FIM rules format: parsing, errors with lines, lookups, excludes."""

from __future__ import annotations

from pathlib import Path

import pytest

from zerodrift.detect.fim.rules import (
    ATTRIBUTES,
    default_rules,
    excluded,
    load_rules,
    parse_rules,
    sort_key,
)
from zerodrift.detect.findings import Severity
from zerodrift.errors import ConfigError

RULES = """\
version: 1
algorithm: blake3
sample_period: 12h
exclude: ["*.pyc"]
paths:
  - path: /srv
    severity: high
  - path: /srv/logs
    attributes: [perms, size]
    severity: low
    exclude: ["/srv/logs/*.gz"]
"""


def test_parse_full_example() -> None:
    rules = parse_rules(RULES, "rules.yaml")
    assert rules.algorithm == "blake3"
    assert rules.sample_period == 12 * 3600
    assert [r.path for r in rules.rules] == ["/srv", "/srv/logs"]
    assert rules.roots == [b"/srv"]
    top = rules.lookup(b"/srv/app/main.py")
    assert top is not None
    assert top[0].severity is Severity.HIGH
    assert top[0].attributes == frozenset(ATTRIBUTES)
    logs = rules.lookup(b"/srv/logs/app/today.log")
    assert logs is not None
    assert logs[0].attributes == frozenset(
        {"type", "mode", "uid", "gid", "xattrs", "size"}
    )
    assert rules.lookup(b"/etc/passwd") is None


def test_excludes_match_names_anywhere_and_paths_per_rule() -> None:
    rules = parse_rules(RULES, "rules.yaml")
    top = rules.lookup(b"/srv/a/b.pyc")
    logs = rules.lookup(b"/srv/logs/x.gz")
    assert top is not None
    assert logs is not None
    assert excluded(top[1], b"/srv/a/b.pyc")
    assert not excluded(top[1], b"/srv/a/b.py")
    assert excluded(logs[1], b"/srv/logs/x.gz")
    assert excluded(logs[1], b"/srv/logs/deep/y.pyc")
    # The per-folder exclude does not leak into the parent rule.
    assert not excluded(top[1], b"/srv/x.gz")


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("version: 1\npaths: []\n", "non-empty list", 2),
        ("version: 1\nalgorithm: md5\npaths: [{path: /a}]\n", "unknown hash", 2),
        ("version: 1\npaths:\n  - path: relative\n", "must be absolute", 3),
        ("version: 1\npaths:\n  - path: /a\n    severity: huge\n", "severity", 4),
        ("version: 1\npaths:\n  - path: /a\n    attributes: [colour]\n", "colour", 4),
        ("version: 1\npaths:\n  - path: /a\n    recurse: no\n", "unknown rule key", 4),
        ("version: 1\nsample_period: soon\npaths: [{path: /a}]\n", "sample_period", 2),
        ("version: 1\npaths: [\n", "not valid YAML", None),
    ],
)
def test_errors_name_the_line(text: str, message: str, line: int | None) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_rules(text, "bad.yaml")
    assert message in caught.value.message
    assert caught.value.location is not None
    assert caught.value.location.path == "bad.yaml"
    if line is not None:
        assert caught.value.location.line == line


def test_unreadable_rules_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read rules file"):
        load_rules(tmp_path / "missing.yaml")


def test_round_trip_through_the_signed_form() -> None:
    rules = parse_rules(RULES, "rules.yaml")
    again = type(rules).from_dict(rules.to_dict())
    assert again.to_dict() == rules.to_dict()


def test_shipped_debian_rules_load() -> None:
    rules = default_rules()
    assert b"/etc" in rules.roots
    shadow = rules.lookup(b"/etc/shadow")
    assert shadow is not None
    assert shadow[0].severity is Severity.CRITICAL
    etc = rules.lookup(b"/etc/mtab")
    assert etc is not None
    assert excluded(etc[1], b"/etc/mtab")


def test_sort_key_orders_depth_first() -> None:
    paths = [b"/a.b", b"/a/x", b"/a", b"/a/x/y", b"/a-"]
    assert sorted(paths, key=sort_key) == [b"/a", b"/a/x", b"/a/x/y", b"/a-", b"/a.b"]
