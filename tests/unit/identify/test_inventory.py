"""The inventory and its exports: JSON, CycloneDX 1.6, Mermaid, DOT."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from tests.unit.spec.test_loader import example_text
from zerodrift.errors import ConfigError
from zerodrift.identify import Inventory, build_inventory
from zerodrift.identify.cyclonedx import to_cyclonedx
from zerodrift.identify.flows import to_dot, to_mermaid
from zerodrift.identify.snapshots import latest_snapshot, record_snapshot
from zerodrift.spec import parse_spec
from zerodrift.state import Database

WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def inventory(env: str | None = None) -> Inventory:
    spec = parse_spec(example_text().encode(), "fleet.yaml")
    return build_inventory(spec.fleet, spec.digest, env)


def test_one_environment_with_overrides_applied() -> None:
    inv = inventory("dev")
    assert inv.environments == ["dev"]
    services = {s.name: s for s in inv.services}
    assert {n: s.replicas for n, s in services.items()} == {"api": 1, "db": 1, "web": 1}
    assert services["db"].response == "approve"
    assert services["web"].response == "alert"
    assert services["db"].volumes == ["db-data:/var/lib/db"]
    assert services["api"].secrets == ["api-token"]
    assert services["web"].ports == ["http:8080/tcp"]
    assert services["web"].max_age == 7 * 86400


def test_all_environments() -> None:
    inv = inventory()
    assert inv.environments == ["dev", "prod", "staging"]
    assert len(inv.services) == 9
    prod_web = next(
        s for s in inv.services if s.environment == "prod" and s.name == "web"
    )
    assert prod_web.replicas == 3


def test_images_and_flows() -> None:
    inv = inventory("prod")
    assert [(i.name, i.used_by) for i in inv.images] == [
        ("api", ["api"]),
        ("db", ["db"]),
        ("web", ["web"]),
    ]
    assert [(f.source, f.target, f.port, f.number) for f in inv.flows] == [
        ("api", "db", "sql", 5432),
        ("web", "api", "http", 8081),
    ]


def test_unknown_environment() -> None:
    with pytest.raises(ConfigError):
        inventory("qa")


def test_json_round_trip() -> None:
    data = json.loads(json.dumps(inventory("prod").to_dict()))
    assert data["fleet"] == "shop"
    assert {s["name"] for s in data["services"]} == {"web", "api", "db"}


def test_cyclonedx_is_valid_and_lists_services_and_dependencies() -> None:
    text = to_cyclonedx(inventory("prod"), timestamp=WHEN)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = json.loads(text)
    assert bom["specVersion"] == "1.6"
    assert bom["metadata"]["timestamp"].startswith("2026-01-02T03:04:05")
    assert {s["bom-ref"] for s in bom["services"]} == {
        "service:prod/web",
        "service:prod/api",
        "service:prod/db",
    }
    assert {c["bom-ref"] for c in bom["components"]} == {
        "image:web",
        "image:api",
        "image:db",
    }
    deps = {d["ref"]: set(d.get("dependsOn", [])) for d in bom["dependencies"]}
    assert deps["service:prod/web"] == {"image:web", "service:prod/api"}
    assert deps["service:prod/api"] == {"image:api", "service:prod/db"}
    assert deps["service:prod/db"] == {"image:db"}
    assert deps["fleet:shop"] == {
        "service:prod/web",
        "service:prod/api",
        "service:prod/db",
    }


def test_built_images_carry_their_digest_into_json_and_cyclonedx() -> None:
    spec = parse_spec(example_text().encode(), "fleet.yaml")
    api = "sha256:" + "ab" * 32
    inv = build_inventory(spec.fleet, spec.digest, "dev", image_digests={"api": api})
    assert {i.name: i.digest for i in inv.images} == {
        "api": api,
        "db": None,
        "web": None,
    }
    assert inv.to_dict()["images"][0]["digest"] == api
    text = to_cyclonedx(inv, timestamp=WHEN)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    components = {c["name"]: c for c in json.loads(text)["components"]}
    assert components["api"]["version"] == api
    purl = PackageURL.from_string(components["api"]["purl"])
    assert (purl.type, purl.name, purl.version) == ("oci", "api", api)
    assert "purl" not in components["web"]
    assert "version" not in components["web"]


def test_cyclonedx_is_reproducible() -> None:
    first = to_cyclonedx(inventory(), timestamp=WHEN)
    assert first == to_cyclonedx(inventory(), timestamp=WHEN)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(first) is None


def test_mermaid() -> None:
    assert to_mermaid(inventory("prod")) == (
        "flowchart LR\n"
        '    api["api<br/>image: api"]\n'
        '    db["db<br/>image: db"]\n'
        '    web["web<br/>image: web"]\n'
        "    api -->|sql 5432/tcp| db\n"
        "    web -->|http 8081/tcp| api\n"
    )


def test_dot_text() -> None:
    dot = to_dot(inventory("prod"))
    assert dot.startswith('digraph "shop" {\n')
    assert '    "web" -> "api" [label="http 8081/tcp"];\n' in dot
    assert '    "api" -> "db" [label="sql 5432/tcp"];\n' in dot
    assert '    "db" [label="db\\nimage: db"];\n' in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz is not installed")
def test_dot_renders_with_graphviz() -> None:
    result = subprocess.run(
        ["dot", "-Tsvg"],
        input=to_dot(inventory("prod")),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stderr == ""
    assert "<svg" in result.stdout
    for label in ("http 8081/tcp", "sql 5432/tcp", "image: web"):
        assert label in result.stdout


def test_snapshots_are_recorded(database_url: str) -> None:
    db = Database.open(database_url)
    try:
        first = record_snapshot(
            db,
            inventory("prod"),
            taken_at="2026-01-01T00:00:00.000000Z",
            git_commit=None,
        )
        second = record_snapshot(
            db, inventory(), taken_at="2026-01-02T00:00:00.000000Z", git_commit="c" * 40
        )
        assert second > first
        newest = latest_snapshot(db)
        assert newest is not None
        assert (newest["id"], newest["environment"], newest["git_commit"]) == (
            second,
            None,
            "c" * 40,
        )
        older = latest_snapshot(db, at_or_before="2026-01-01T12:00:00.000000Z")
        assert older is not None
        assert older["environment"] == "prod"
        assert older["content"] == json.loads(json.dumps(inventory("prod").to_dict()))
        assert latest_snapshot(db, at_or_before="2025-01-01T00:00:00.000000Z") is None
    finally:
        db.close()
