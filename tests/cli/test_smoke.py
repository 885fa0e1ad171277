from __future__ import annotations

import json
from pathlib import Path


def test_init_validate_inventory_verify(project: Path, cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("spec", "validate", "--format", "json", cwd=project)
    assert result.code == 0, result.err
    assert json.loads(result.out)["services"] == 3

    result = cli("inventory", "--format", "json", "--env", "prod", cwd=project)
    assert result.code == 0, result.err
    inventory = json.loads(result.out)
    assert inventory["schema_version"] == 1
    assert {s["name"]: s["replicas"] for s in inventory["services"]} == {
        "web": 3,
        "api": 2,
        "db": 1,
    }

    result = cli("audit", "verify", "--format", "json", cwd=project)
    assert result.code == 0, result.err
    assert json.loads(result.out)["records"] == 3
