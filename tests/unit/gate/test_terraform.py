"""Terraform plan reading and the plan rules, over real plan JSON documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.gate import asset
from zerodrift.errors import ConfigError
from zerodrift.gate.terraform import check_plan, load_plan, parse_plan
from zerodrift.spec.models import TerraformPolicy


def _outcomes(name: str, policy: TerraformPolicy | None = None) -> dict[str, object]:
    plan = load_plan(asset(name), name)
    checks = check_plan(plan, policy or TerraformPolicy())
    return {f"{c.rule} {c.target}": c.ok for c in checks}


def test_create_of_immutable_resource_passes() -> None:
    outcomes = _outcomes("plan_create.json")
    assert outcomes["plan-immutable-update aws_instance.web"] is True
    # Security groups are not compute: the immutability rule ignores them.
    assert "plan-immutable-update aws_security_group.web" not in outcomes


def test_in_place_update_of_instance_fails_with_location_and_attributes() -> None:
    plan = load_plan(asset("plan_update_in_place.json"), "plan.json")
    checks = [c for c in check_plan(plan, TerraformPolicy()) if c.ok is False]
    assert [c.target for c in checks] == ["aws_instance.web"]
    failure = checks[0]
    assert "instance_type" in failure.message
    assert "-replace=aws_instance.web" in (failure.hint or "")
    # The resource_changes entry, not the earlier resource_drift mention.
    text = asset("plan_update_in_place.json").read_text().splitlines()
    assert failure.location is not None
    assert failure.location.line is not None
    assert '"address": "aws_instance.web"' in text[failure.location.line - 1]
    assert failure.location.line == 39


def test_update_of_mutable_type_is_not_an_immutability_failure() -> None:
    outcomes = _outcomes("plan_update_in_place.json")
    assert "plan-immutable-update aws_security_group.web" not in outcomes


def test_replace_in_either_order_passes() -> None:
    outcomes = _outcomes("plan_replace.json")
    assert outcomes["plan-immutable-update module.fleet.aws_instance.node[0]"] is True
    assert outcomes['plan-immutable-update google_compute_instance.api["eu-west1"]']


def test_delete_no_op_and_read_pass() -> None:
    plan = load_plan(asset("plan_delete_noop_read.json"))
    actions = {c.address: c.actions for c in plan.changes}
    assert actions["data.aws_ami.debian"] == ("read",)
    assert actions["azurerm_linux_virtual_machine.db"] == ("no-op",)
    outcomes = _outcomes("plan_delete_noop_read.json")
    assert outcomes == {
        "plan-inventory plan_delete_noop_read.json": None,
        "plan-immutable-update aws_instance.legacy": True,
    }


def test_azure_vm_update_in_module_fails() -> None:
    outcomes = _outcomes("plan_azure_update_in_place.json")
    key = "plan-immutable-update module.db.azurerm_linux_virtual_machine.this"
    assert outcomes[key] is False


def test_immutable_types_are_configurable() -> None:
    extra = TerraformPolicy(extra_immutable_types=["aws_security_group"])
    outcomes = _outcomes("plan_update_in_place.json", extra)
    assert outcomes["plan-immutable-update aws_security_group.web"] is False
    none = TerraformPolicy(immutable_types=[])
    assert not any(
        k.startswith("plan-immutable")
        for k in _outcomes("plan_update_in_place.json", none)
    )


def test_inventory_accepts_declared_and_rejects_the_rest() -> None:
    policy = TerraformPolicy(inventory=["aws_instance.*", "module.fleet.*"])
    outcomes = _outcomes("plan_create.json", policy)
    assert outcomes["plan-inventory aws_instance.web"] is True
    assert outcomes["plan-inventory aws_security_group.web"] is False
    replaced = _outcomes("plan_replace.json", policy)
    assert replaced["plan-inventory module.fleet.aws_instance.node[0]"] is True
    assert replaced['plan-inventory google_compute_instance.api["eu-west1"]'] is False


def test_inventory_address_covers_its_instances() -> None:
    policy = TerraformPolicy(
        inventory=["module.fleet.aws_instance.node", "google_compute_instance.api"]
    )
    outcomes = _outcomes("plan_replace.json", policy)
    assert set(outcomes.values()) == {True}


def test_inventory_skips_without_declaration() -> None:
    assert _outcomes("plan_create.json")["plan-inventory plan_create.json"] is None


def test_truncated_plan_names_file_and_position() -> None:
    with pytest.raises(ConfigError) as caught:
        load_plan(asset("plan_truncated.json"), "plan_truncated.json")
    error = caught.value
    assert error.reference == "plan-malformed"
    assert error.location is not None
    assert (error.location.path, error.location.line) == ("plan_truncated.json", 54)
    assert error.location.column == 10


def test_unknown_format_version_is_a_clear_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_plan(asset("plan_unknown_format_version.json"))
    assert caught.value.reference == "plan-format-unsupported"
    assert "'2.0'" in caught.value.message


def test_state_file_is_not_a_plan() -> None:
    with pytest.raises(ConfigError) as caught:
        load_plan(asset("state_not_plan.json"))
    assert caught.value.reference == "plan-not-a-plan"


@pytest.mark.parametrize(
    ("content", "reference"),
    [
        (b"", "plan-malformed"),
        (b"\xff\xfe{}", "plan-malformed"),
        (b"[1, 2]", "plan-not-a-plan"),
        (b'{"format_version": 1.2, "planned_values": {}}', "plan-format-unsupported"),
        (
            b'{"format_version": "1.2", "resource_changes": [{"address": "a.b",'
            b' "type": "a", "change": {"actions": ["mutate"]}}]}',
            "plan-malformed",
        ),
        (
            b'{"format_version": "1.2", "resource_changes": [{"type": "a"}]}',
            "plan-malformed",
        ),
    ],
)
def test_bad_plans_never_pass(tmp_path: Path, content: bytes, reference: str) -> None:
    path = tmp_path / "plan.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_plan(path)
    assert caught.value.reference == reference


def test_plan_without_changes_has_none(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"format_version": "1.1", "planned_values": {}}))
    assert load_plan(path).changes == ()


def test_huge_plan_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zerodrift.gate import terraform

    monkeypatch.setattr(terraform, "MAX_PLAN_BYTES", 100)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"format_version": "1.2", "x": "y" * 200}))
    with pytest.raises(ConfigError) as caught:
        load_plan(path)
    assert caught.value.reference == "plan-too-large"


def test_plan_folder_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_plan(tmp_path)
    assert caught.value.reference == "plan-unreadable"


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_truncation_of_a_plan_is_an_error_with_a_position(
    data: st.DataObject,
) -> None:
    raw = asset("plan_update_in_place.json").read_bytes().rstrip()
    cut = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    with pytest.raises(ConfigError) as caught:
        parse_plan(raw[:cut], "cut.json")
    location = caught.value.location
    assert location is not None
    assert location.path == "cut.json"
    assert location.line is not None
