"""Reading only the trust keys of a spec (what ``fim`` on a host needs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from zerodrift.errors import ConfigError
from zerodrift.spec import SpecError, load_spec, load_trust_keys
from zerodrift.spec.loader import MAX_SPEC_BYTES

from .test_loader import example_text


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_spec_gives_the_same_keys_as_the_full_loader(tmp_path: Path) -> None:
    path = write(tmp_path, example_text())
    assert load_trust_keys(path) == dict(load_spec(path).fleet.trust.keys)
    assert load_trust_keys(path)  # the example trusts the project key


def test_the_rest_of_the_spec_is_not_validated(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: 1\nname: shop\nservices: {web: {image: missing}}\n"
        "bogus: 1\ntrust:\n  keys: {ops: keys/ops.pub}\n",
    )
    with pytest.raises(SpecError):
        load_spec(path)
    assert load_trust_keys(path) == {"ops": "keys/ops.pub"}


def test_no_trust_section_means_no_keys(tmp_path: Path) -> None:
    assert load_trust_keys(write(tmp_path, "version: 1\nname: shop\n")) == {}


@pytest.mark.parametrize(
    ("trust", "line", "field", "message"),
    [
        ("trust: [a]\n", 3, "trust", "trust must be a mapping"),
        ("trust:\n  keys: [a]\n", 4, "trust.keys", "trust.keys must be a mapping"),
        ("trust:\n  keys:\n    Bad_Name: k.pub\n", 5, "trust.keys.Bad_Name", "invalid"),
        ("trust:\n  keys:\n    ops: ''\n", 5, "trust.keys.ops", "file path"),
        ("trust:\n  keys:\n    ops: [a]\n", 5, "trust.keys.ops", "file path"),
    ],
)
def test_a_malformed_trust_section_is_located(
    tmp_path: Path, trust: str, line: int, field: str, message: str
) -> None:
    path = write(tmp_path, "version: 1\nname: shop\n" + trust)
    with pytest.raises(SpecError) as caught:
        load_trust_keys(path)
    location, text, hint = caught.value.problems[0]
    assert (location.path, location.line, location.field) == (str(path), line, field)
    assert message in text
    assert hint is not None
    assert "spec validate" in hint


def test_duplicate_keys_and_bad_yaml_are_refused(tmp_path: Path) -> None:
    dup = "trust:\n  keys:\n    ops: a.pub\n    ops: b.pub\n"
    with pytest.raises(SpecError, match="duplicate key 'ops'"):
        load_trust_keys(write(tmp_path, dup))
    with pytest.raises(SpecError, match="malformed YAML"):
        load_trust_keys(write(tmp_path, "trust: {keys: [\n"))


def test_missing_and_oversized_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no fleet spec"):
        load_trust_keys(tmp_path / "absent.yaml")
    big = tmp_path / "fleet.yaml"
    big.write_bytes(b"#" * (MAX_SPEC_BYTES + 1))
    with pytest.raises(ConfigError, match="larger than"):
        load_trust_keys(big)
