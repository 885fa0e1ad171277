"""Kubernetes manifest reading and the manifest rules, over real manifests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.gate import ASSETS, asset
from zerodrift.errors import ConfigError
from zerodrift.gate.kubernetes import (
    check_manifests,
    find_manifest_files,
    load_manifests,
    parse_manifests,
)
from zerodrift.gate.results import Check


def _checks(*paths: Path) -> list[Check]:
    files = find_manifest_files(list(paths))
    return check_manifests([m for f in files for m in load_manifests(f, f.name)])


def _line(check: Check) -> str:
    """The text of the line a check points at."""
    assert check.location is not None
    assert check.location.line is not None
    lines = (ASSETS / str(check.location.path)).read_text().splitlines()
    return lines[check.location.line - 1]


def _by_rule(checks: list[Check], rule: str) -> dict[str, bool | None]:
    return {c.target: c.ok for c in checks if c.rule == rule}


@pytest.fixture(scope="module")
def hardened() -> list[Check]:
    return _checks(ASSETS / "k8s_hardened")


@pytest.fixture(scope="module")
def insecure() -> list[Check]:
    return _checks(asset("k8s_insecure.yaml"))


def test_multi_document_files_are_read_with_kinds_and_lines() -> None:
    manifests = load_manifests(asset("k8s_hardened/web.yaml"), "web.yaml")
    assert [m.ref for m in manifests] == [
        "ServiceAccount/shop/web",
        "Deployment/shop/web",
        "Service/shop/web",
    ]
    assert manifests[1].line == 9


def test_hardened_manifests_pass_every_rule(hardened: list[Check]) -> None:
    assert hardened, "no checks ran"
    assert {c.rule for c in hardened} == {
        "manifest-image-digest",
        "manifest-privilege-escalation",
        "manifest-privileged",
        "manifest-host-path",
        "manifest-readonly-root",
        "manifest-pods-exec",
    }
    assert [c for c in hardened if c.ok is not True] == []
    # Init containers and CronJob pods are checked too.
    targets = _by_rule(hardened, "manifest-image-digest")
    assert set(targets) == {
        "Deployment/shop/web#migrate",
        "Deployment/shop/web#web",
        "CronJob/shop/report#report",
    }


def test_tag_instead_of_digest_fails(insecure: list[Check]) -> None:
    digest = _by_rule(insecure, "manifest-image-digest")
    assert digest == {
        "DaemonSet/kube-system/agent#agent": False,
        "Job/seed#seed": False,
    }
    failure = next(c for c in insecure if c.target == "Job/seed#seed")
    assert _line(failure) == "          image: busybox:latest"


def test_privilege_escalation_fails_when_true_or_unset(insecure: list[Check]) -> None:
    checks = _by_rule(insecure, "manifest-privilege-escalation")
    assert checks == {
        "DaemonSet/kube-system/agent#agent": False,
        "Job/seed#seed": False,
    }
    agent = next(
        c
        for c in insecure
        if c.rule == "manifest-privilege-escalation" and "agent" in c.target
    )
    assert _line(agent).strip() == "allowPrivilegeEscalation: true"
    assert "true" in agent.message


def test_privileged_fails(insecure: list[Check]) -> None:
    checks = _by_rule(insecure, "manifest-privileged")
    assert checks == {"DaemonSet/kube-system/agent#agent": False, "Job/seed#seed": True}


def test_host_path_fails_at_the_volume(insecure: list[Check]) -> None:
    checks = [c for c in insecure if c.rule == "manifest-host-path"]
    assert {c.target: c.ok for c in checks} == {
        "DaemonSet/kube-system/agent": False,
        "Job/seed": True,
    }
    failing = next(c for c in checks if c.ok is False)
    assert _line(failing).strip() == "- name: host-root"
    assert "'/'" in failing.message


def test_missing_read_only_root_fails(insecure: list[Check]) -> None:
    checks = _by_rule(insecure, "manifest-readonly-root")
    assert set(checks.values()) == {False}


def test_pods_exec_grant_fails(insecure: list[Check]) -> None:
    checks = [c for c in insecure if c.rule == "manifest-pods-exec"]
    assert len(checks) == 1
    assert checks[0].ok is False
    assert checks[0].target == "ClusterRole/debugger"
    assert _line(checks[0]).strip() == '- apiGroups: [""]'
    lines = asset("k8s_insecure.yaml").read_text().splitlines()
    location = checks[0].location
    assert location is not None
    assert location.line is not None
    assert "pods/exec" in lines[location.line]


@pytest.mark.parametrize(
    ("rule", "verbs", "resources", "grants"),
    [
        ({"apiGroups": ["*"]}, ["*"], ["*"], True),
        ({"apiGroups": [""]}, ["get"], ["pods/exec"], True),
        ({"apiGroups": [""]}, ["list"], ["pods/exec"], False),
        ({"apiGroups": ["apps"]}, ["create"], ["pods/exec"], False),
        ({"apiGroups": [""]}, ["create"], ["pods/log"], False),
    ],
)
def test_exec_grant_variants(
    rule: dict[str, list[str]], verbs: list[str], resources: list[str], grants: bool
) -> None:
    doc = (
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\n"
        "metadata: {name: r, namespace: n}\nrules:\n"
        f"  - apiGroups: {rule['apiGroups']}\n"
        f"    resources: {resources}\n    verbs: {verbs}\n"
    ).replace("'", '"')
    checks = check_manifests(parse_manifests(doc.encode(), "r.yaml"))
    assert checks[0].ok is (not grants)


def test_list_kind_is_opened() -> None:
    doc = b"""apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Pod
    metadata: {name: p}
    spec:
      containers: [{name: c, image: "alpine:3"}]
"""
    checks = check_manifests(parse_manifests(doc, "list.yaml"))
    assert _by_rule(checks, "manifest-image-digest") == {"Pod/p#c": False}


def test_helm_template_is_refused_with_position() -> None:
    with pytest.raises(ConfigError) as caught:
        load_manifests(asset("helm_template.yaml"), "helm_template.yaml")
    error = caught.value
    assert error.reference == "manifest-unrendered-template"
    assert "helm template" in (error.hint or "")
    assert error.location is not None
    assert (error.location.line, error.location.column) == (4, 9)


def test_chart_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "Chart.yaml").write_text("apiVersion: v2\nname: shop\n")
    with pytest.raises(ConfigError) as caught:
        find_manifest_files([tmp_path])
    assert caught.value.reference == "manifest-unrendered-template"


def test_invalid_yaml_names_file_line_and_column() -> None:
    with pytest.raises(ConfigError) as caught:
        load_manifests(asset("invalid_yaml.yaml"), "invalid_yaml.yaml")
    error = caught.value
    assert error.reference == "manifest-malformed"
    assert error.location is not None
    assert error.location.path == "invalid_yaml.yaml"
    assert error.location.line is not None
    assert error.location.line >= 8
    assert error.location.column is not None


def test_huge_file_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zerodrift.gate import kubernetes

    monkeypatch.setattr(kubernetes, "MAX_MANIFEST_BYTES", 1000)
    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * 200)
    with pytest.raises(ConfigError) as caught:
        load_manifests(path)
    assert caught.value.reference == "manifest-too-large"


def test_many_documents_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from zerodrift.gate import kubernetes

    monkeypatch.setattr(kubernetes, "MAX_DOCUMENTS", 3)
    doc = b"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n" * 5
    with pytest.raises(ConfigError) as caught:
        parse_manifests(doc, "many.yaml")
    assert caught.value.reference == "manifest-too-large"


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        find_manifest_files([tmp_path / "nope"])
    assert caught.value.reference == "manifests-missing"


def test_tab_indented_json_is_read_without_positions() -> None:
    doc = (
        '{\n\t"apiVersion": "v1",\n\t"kind": "Pod",\n\t"metadata": {"name": "p"},\n'
        '\t"spec": {"containers": [{"name": "c", "image": "alpine:3"}]}\n}\n'
    )
    checks = check_manifests(parse_manifests(doc.encode(), "pod.json"))
    failing = [c for c in checks if c.rule == "manifest-image-digest"]
    assert [c.ok for c in failing] == [False]
    assert failing[0].location is not None
    assert failing[0].location.path == "pod.json"


def test_truncated_json_manifest_names_position() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_manifests(b'{\n\t"apiVersion": "v1",\n\t"kind": ', "pod.json")
    assert caught.value.reference == "manifest-malformed"
    assert caught.value.location is not None
    assert caught.value.location.line == 3
