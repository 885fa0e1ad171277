"""Loading fleet.yaml: the example, and every kind of bad input a new user makes.

Each bad spec is written to a real file and loaded the way the CLI loads it;
the assertions name the exact line, column and field the user must look at.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from zerodrift.errors import ConfigError, Location
from zerodrift.spec import MAX_SPEC_BYTES, LoadedSpec, SpecError, load_spec, parse_spec


def example_text(name: str = "shop") -> str:
    template = resources.files("zerodrift.templates") / "example" / "fleet.yaml"
    return template.read_text(encoding="utf-8").replace("{{name}}", name)


HEAD = "version: 1\nname: shop\n"
IMAGE = "images:\n  app: {}\n"


def load_text(tmp_path: Path, text: str | bytes) -> LoadedSpec:
    path = tmp_path / "fleet.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return load_spec(path)


def problems(
    tmp_path: Path, text: str | bytes
) -> list[tuple[Location, str, str | None]]:
    with pytest.raises(SpecError) as caught:
        load_text(tmp_path, text)
    return caught.value.problems


def only_problem(tmp_path: Path, text: str) -> tuple[Location, str, str | None]:
    found = problems(tmp_path, text)
    assert len(found) == 1, found
    return found[0]


def test_example_spec_loads_with_its_services_and_environments(
    tmp_path: Path,
) -> None:
    spec = load_text(tmp_path, example_text())
    fleet = spec.fleet
    assert fleet.name == "shop"
    assert sorted(fleet.services) == ["api", "db", "web"]
    assert sorted(fleet.environments) == ["dev", "prod", "staging"]
    assert fleet.services["web"].talks_to[0].service == "api"
    assert fleet.services["web"].max_age == 7 * 86400
    assert fleet.services["db"].resources.memory == 128 * 1024**2
    assert spec.digest.startswith("sha256:")


def test_digest_ignores_comments_and_formatting(tmp_path: Path) -> None:
    first = parse_spec(example_text().encode(), "a.yaml")
    reformatted = "# a comment\n" + example_text().replace(
        "replicas: 2", "replicas:  2"
    )
    second = parse_spec(reformatted.encode(), "b.yaml")
    changed = parse_spec(
        example_text().replace("replicas: 2", "replicas: 4", 1).encode(), "c.yaml"
    )
    assert first.digest == second.digest
    assert first.digest != changed.digest


def test_malformed_yaml_points_at_the_position(tmp_path: Path) -> None:
    loc, message, hint = only_problem(tmp_path, HEAD + "services: [\n  web\n")
    assert message.startswith("malformed YAML")
    assert (loc.path, loc.line, loc.column) == (str(tmp_path / "fleet.yaml"), 5, 1)
    assert hint is not None


def test_tab_indentation_is_malformed_yaml(tmp_path: Path) -> None:
    loc, message, _ = only_problem(tmp_path, "version: 1\n\tname: shop\n")
    assert "malformed YAML" in message
    assert (loc.line, loc.column) == (2, 1)


def test_wrong_type_names_the_field_and_position(tmp_path: Path) -> None:
    text = HEAD + IMAGE + "services:\n  web:\n    image: app\n    replicas: many\n"
    loc, message, hint = only_problem(tmp_path, text)
    assert (loc.line, loc.column, loc.field) == (8, 5, "services.web.replicas")
    assert "valid integer" in message
    assert hint is not None
    assert "spec schema" in hint


@pytest.mark.parametrize(
    ("text", "line", "column", "field"),
    [
        (HEAD + "colour: blue\n", 3, 1, "colour"),
        (HEAD + "images:\n  app:\n    bsae: scratch\n", 5, 5, "images.app.bsae"),
        (
            HEAD + "images:\n  app:\n    hardening:\n      allow_shel: true\n",
            6,
            7,
            "images.app.hardening.allow_shel",
        ),
        (
            HEAD
            + IMAGE
            + "services:\n  web:\n    image: app\n    ports:\n"
            + "      - {name: http, port: 80, proto: tcp}\n",
            9,
            32,
            "services.web.ports.0.proto",
        ),
        (
            HEAD + "environments:\n  prod:\n    overrides:\n      web: {replica: 2}\n",
            6,
            13,
            "environments.prod.overrides.web.replica",
        ),
    ],
    ids=["top", "image", "hardening", "port-item", "override"],
)
def test_unknown_key_at_any_depth(
    tmp_path: Path, text: str, line: int, column: int, field: str
) -> None:
    found = [p for p in problems(tmp_path, text) if "unknown key" in p[1]]
    assert len(found) == 1, found
    loc, message, hint = found[0]
    assert (loc.line, loc.column, loc.field) == (line, column, field)
    assert repr(field) in message
    assert hint is not None
    assert "spelling" in hint


def test_duplicate_service_name_is_reported_with_its_path(tmp_path: Path) -> None:
    text = (
        HEAD
        + IMAGE
        + "services:\n  web:\n    image: app\n  api:\n    image: app\n"
        + "  web:\n    image: app\n"
    )
    loc, message, hint = only_problem(tmp_path, text)
    assert message == "duplicate key 'web'"
    assert (loc.line, loc.column, loc.field) == (10, 3, "services.web")
    assert hint is not None
    assert "unique" in hint


def test_duplicate_nested_key_is_reported_with_its_path(tmp_path: Path) -> None:
    text = HEAD + "images:\n  app:\n    packages: []\n    packages: [curl]\n"
    loc, message, _ = only_problem(tmp_path, text)
    assert message == "duplicate key 'packages'"
    assert (loc.line, loc.field) == (6, "images.app.packages")


def test_unknown_image_is_a_dangling_reference(tmp_path: Path) -> None:
    text = HEAD + IMAGE + "services:\n  web:\n    image: nginx\n"
    loc, message, hint = only_problem(tmp_path, text)
    assert message == "service 'web' uses unknown image 'nginx'"
    assert (loc.line, loc.column, loc.field) == (7, 5, "services.web.image")
    assert hint == "declared: app"


def test_flow_to_unknown_service(tmp_path: Path) -> None:
    text = (
        HEAD
        + IMAGE
        + "services:\n  web:\n    image: app\n    talks_to: [cache:redis]\n"
    )
    loc, message, hint = only_problem(tmp_path, text)
    assert message == "flow from 'web' to unknown service 'cache'"
    assert loc.field == "services.web.talks_to.0.service"
    assert (loc.line, loc.column) == (8, 16)
    assert hint == "declared: web"


def test_flow_to_undeclared_port(tmp_path: Path) -> None:
    text = (
        HEAD
        + IMAGE
        + "services:\n  web:\n    image: app\n"
        + "    talks_to:\n      - {service: api, port: grpc}\n"
        + "  api:\n    image: app\n    ports: [{name: http, port: 8080}]\n"
    )
    loc, message, hint = only_problem(tmp_path, text)
    assert "names port 'grpc', which 'api' does not declare" in message
    assert (loc.line, loc.column, loc.field) == (9, 24, "services.web.talks_to.0.port")
    assert hint == "ports of 'api': http (8080)"


def test_flow_by_port_number_is_accepted(tmp_path: Path) -> None:
    text = (
        HEAD
        + IMAGE
        + "services:\n  web:\n    image: app\n    talks_to: ['api:8080']\n"
        + "  api:\n    image: app\n    ports: [{name: http, port: 8080}]\n"
    )
    spec = load_text(tmp_path, text)
    assert spec.fleet.services["web"].talks_to[0].port == 8080


def test_override_of_unknown_service(tmp_path: Path) -> None:
    text = HEAD + "environments:\n  prod:\n    overrides:\n      web: {replicas: 2}\n"
    loc, message, hint = only_problem(tmp_path, text)
    assert message == "environment 'prod' overrides unknown service 'web'"
    assert (loc.line, loc.column, loc.field) == (
        6,
        7,
        "environments.prod.overrides.web",
    )
    assert hint == "declared: none"


def test_trust_naming_unknown_environment_and_key(tmp_path: Path) -> None:
    text = (
        HEAD
        + "environments:\n  prod: {}\n"
        + "trust:\n  keys: {ci: keys/ci.pub}\n  environments:\n"
        + "    prod: [ci, release]\n    qa: [ci]\n"
    )
    found = problems(tmp_path, text)
    by_field = {
        loc.field: (loc.line, loc.column, msg, hint) for loc, msg, hint in found
    }
    assert by_field == {
        "trust.environments.prod.1": (
            8,
            16,
            "trust names unknown key 'release'",
            "declared: ci",
        ),
        "trust.environments.qa": (
            9,
            5,
            "trust names unknown environment 'qa'",
            "declared: prod",
        ),
    }


@pytest.mark.parametrize(
    ("health", "found"),
    [("{interval: 5s}", "none"), ("{tcp: http, http: http/}", "http, tcp")],
    ids=["no-probe", "two-probes"],
)
def test_health_check_needs_exactly_one_probe(
    tmp_path: Path, health: str, found: str
) -> None:
    text = (
        HEAD
        + IMAGE
        + "services:\n  web:\n    image: app\n"
        + "    ports: [{name: http, port: 80}]\n"
        + f"    health: {health}\n"
    )
    loc, message, hint = only_problem(tmp_path, text)
    assert message == "a health check needs exactly one of command, http, tcp"
    assert (loc.line, loc.column, loc.field) == (9, 5, "services.web.health")
    assert hint == f"found: {found}"


def test_health_check_on_undeclared_port(tmp_path: Path) -> None:
    text = HEAD + IMAGE + "services:\n  web:\n    image: app\n    health: {tcp: http}\n"
    loc, message, _ = only_problem(tmp_path, text)
    assert message == "health check names port 'http', which is not declared"
    assert loc.field == "services.web.health.tcp"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        HEAD
        + IMAGE
        + "services:\n  web:\n    image: nginx\n    talks_to: [db:sql]\n"
        + "environments:\n  prod:\n    overrides: {cache: {replicas: 1}}\n"
    )
    found = problems(tmp_path, text)
    assert [loc.field for loc, _, _ in found] == [
        "services.web.image",
        "services.web.talks_to.0.service",
        "environments.prod.overrides.cache",
    ]


def test_spec_over_ten_megabytes_is_refused_without_parsing(tmp_path: Path) -> None:
    big = (HEAD + "#" + "x" * 1000 + "\n") * (MAX_SPEC_BYTES // 1000)
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, big)
    assert caught.value.reference == "spec-too-large"
    assert "larger than 10 MB" in caught.value.message


def test_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 8):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, "\n".join(lines) + "\n")
    assert caught.value.reference == "spec-too-large"
    assert "aliases" in (caught.value.hint or "")


def test_non_utf8_bytes_are_located(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, b"version: 1\nname: caf\xe9\n")
    error = caught.value
    assert error.reference == "spec-not-utf8"
    assert error.location is not None
    assert (error.location.line, error.location.column) == (2, 10)
    assert "0xe9" in error.message
    assert error.hint == "save the file as UTF-8"


def test_empty_file(tmp_path: Path) -> None:
    loc, message, hint = only_problem(tmp_path, "")
    assert message == "the spec is empty"
    assert (loc.line, loc.column) == (1, 1)
    assert hint is not None
    assert "version: 1" in hint


@pytest.mark.parametrize("text", ["- web\n- api\n", "just text\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    _, message, _ = only_problem(tmp_path, text)
    assert message == "the spec must be a mapping at the top level"


def test_unsupported_version(tmp_path: Path) -> None:
    loc, message, hint = only_problem(tmp_path, "version: 2\nname: shop\n")
    assert message == "unsupported spec version"
    assert (loc.line, loc.field) == (1, "version")
    assert hint == "this zerodrift reads 'version: 1'"


def test_missing_required_keys(tmp_path: Path) -> None:
    found = problems(tmp_path, "images: {}\n")
    assert sorted(msg for _, msg, _ in found) == [
        "missing required key 'name'",
        "missing required key 'version'",
    ]


def test_privileged_services_are_refused(tmp_path: Path) -> None:
    text = HEAD + IMAGE + "services:\n  web:\n    image: app\n    privileged: true\n"
    loc, _, _ = only_problem(tmp_path, text)
    assert loc.field == "services.web.privileged"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_spec(tmp_path / "fleet.yaml")
    assert caught.value.reference == "spec-missing"
    assert "zerodrift init" in (caught.value.hint or "")


SPELLING = "check the spelling; 'zerodrift spec schema' lists every allowed key"


def test_diagnostics_list_every_problem_with_location(tmp_path: Path) -> None:
    text = HEAD + "colour: blue\nimages:\n  app: {bsae: x}\n"
    with pytest.raises(SpecError) as caught:
        load_text(tmp_path, text)
    text_out = caught.value.diagnostics()
    path = tmp_path / "fleet.yaml"
    assert f"--> {path}:3:1 (colour)" in text_out
    assert f"--> {path}:5:9 (images.app.bsae)" in text_out
    assert text_out.endswith(f"{path}: 2 problems")
    assert [p[0].field for p in caught.value.problems] == ["colour", "images.app.bsae"]
    as_json = caught.value.to_dict()
    assert as_json["problems"] == [
        {
            "path": str(path),
            "line": 3,
            "column": 1,
            "field": "colour",
            "message": "unknown key 'colour'",
            "hint": SPELLING,
        },
        {
            "path": str(path),
            "line": 5,
            "column": 9,
            "field": "images.app.bsae",
            "message": "unknown key 'images.app.bsae'",
            "hint": SPELLING,
        },
    ]


@pytest.mark.parametrize("cap", ["NET_ADMIN", "SYS_ADMIN", "ALL"])
def test_capabilities_that_undo_flow_rules_are_refused(
    tmp_path: Path, cap: str
) -> None:
    text = (
        HEAD
        + IMAGE
        + "services:\n  web:\n    image: app\n"
        + f"    capabilities: [NET_BIND_SERVICE, {cap}]\n"
    )
    loc, message, hint = only_problem(tmp_path, text)
    assert message == (
        f"service 'web' asks for {cap}, with which a node could remove the flow "
        "rules installed in its own network namespace"
    )
    assert (loc.line, loc.field) == (8, "services.web.capabilities.1")
    assert hint is not None
    assert "talks_to" in hint


def test_other_added_capabilities_are_accepted(tmp_path: Path) -> None:
    text = (
        HEAD
        + IMAGE
        + "services:\n  web:\n    image: app\n    capabilities: [NET_BIND_SERVICE]\n"
    )
    spec = load_text(tmp_path, text)
    assert spec.fleet.services["web"].capabilities == ["NET_BIND_SERVICE"]
