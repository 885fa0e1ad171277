"""``zerodrift check`` against real nodes on a private podman service."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from zerodrift.runtime.podman import PodmanBackend

pytestmark = [pytest.mark.podman, pytest.mark.slow]

ENV = "dev"


def _node(backend: PodmanBackend, project: Path, service: str) -> str:
    fleet = next(
        line.split(":", 1)[1].strip()
        for line in (project / "fleet.yaml").read_text().splitlines()
        if line.startswith("name:")
    )
    return sorted(
        n.name
        for n in backend.list_nodes()
        if n.labels.get("io.zerodrift.fleet") == fleet
        and n.service == service
        and n.state == "running"
    )[0]


def _exec(backend: PodmanBackend, node: str, script: str, *, detach: bool) -> None:
    """Run a shell in a node the way an intruder would: ``podman exec``."""
    created = backend.client.json(
        "POST",
        f"/containers/{node}/exec",
        json_body={"Cmd": ["/bin/sh", "-c", script], "AttachStdout": not detach},
    )
    backend.client.request(
        "POST", f"/exec/{created['Id']}/start", json_body={"Detach": detach}
    )


def _findings(cli: Any, project: Path) -> tuple[int, list[dict[str, Any]]]:
    result = cli("check", "--env", ENV, "--format", "json", cwd=project)
    assert result.code in (0, 1), result.err
    (environment,) = json.loads(result.out)["environments"]
    return result.code, environment["findings"]


def test_apply_is_clean_then_a_written_script_and_a_shell_are_found(
    rt_project: Path, cli: Any, backend: PodmanBackend
) -> None:
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    # A legitimate deploy never raises a finding.
    code, found = _findings(cli, rt_project)
    assert (code, found) == (0, [])

    api = _node(backend, rt_project, "api")
    _exec(
        backend,
        api,
        "printf '#!/bin/sh\\nid\\n' > /tmp/implant.sh; echo notes > /tmp/notes.txt",
        detach=False,
    )
    _exec(backend, api, "exec sleep 120", detach=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        code, found = _findings(cli, rt_project)
        by_kind = {f["kind"]: f for f in found}
        shell = by_kind.get("foreign-process")
        # Until the shell has exec'd, its command line is "/bin/sh -c exec ...".
        seen = [p["command"] for p in shell["details"]["processes"]] if shell else []
        if "executable-added" in by_kind and seen == ["sleep 120"]:
            break
        time.sleep(0.2)
    assert code == 1
    assert set(by_kind) == {"executable-added", "foreign-process"}, found
    implant = by_kind["executable-added"]
    assert implant["subject"] == api
    assert implant["severity"] == "critical"
    assert [f["path"] for f in implant["details"]["files"]] == ["/tmp/implant.sh"]
    assert "PR.PS-05" in implant["csf"]
    shell = by_kind["foreign-process"]
    assert [p["command"] for p in shell["details"]["processes"]] == ["sleep 120"]

    # Stored, audited, and emitted as OCSF lines.
    with sqlite3.connect(rt_project / ".zerodrift" / "state.db") as conn:
        stored = conn.execute(
            "SELECT kind, subject FROM findings WHERE source = 'node'"
        ).fetchall()
    assert ("executable-added", api) in stored
    audit = cli("audit", "log", "--format", "json", cwd=rt_project)
    assert "finding.raised" in audit.out
    ocsf = cli("check", "--env", ENV, "--format", "ocsf", cwd=rt_project)
    assert ocsf.code == 1
    lines = [json.loads(line) for line in ocsf.out.splitlines()]
    assert [line["class_uid"] for line in lines].count(2004) == 2
    findings = [line for line in lines if line["class_uid"] == 2004]
    assert {line["resources"][0]["name"] for line in findings} == {api}
    (activity,) = [line for line in lines if line["class_uid"] == 1001]
    assert activity["file"]["path"] == "/tmp/implant.sh"
    assert activity["activity_name"] == "Create"
    assert activity["device"]["name"] == api


def test_in_place_changes_and_stray_containers_are_found(
    rt_project: Path, cli: Any, backend: PodmanBackend
) -> None:
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    db = _node(backend, rt_project, "db")
    (network,) = backend.inspect(db)["NetworkSettings"]["Networks"]
    backend.client.request(
        "POST", f"/networks/{network}/disconnect", json_body={"Container": db}
    )
    image = backend.inspect(db)["Image"]
    stray = f"stray-{rt_project.name}"
    backend.client.json(
        "POST", "/containers/create", json_body={"name": stray, "image": image}
    )
    code, found = _findings(cli, rt_project)
    assert code == 1
    kinds = {(f["subject"], f["kind"]) for f in found}
    assert (db, "config-drift") in kinds
    assert (stray, "unmanaged") in kinds
    drift = next(f for f in found if f["kind"] == "config-drift")
    assert [d["field"] for d in drift["details"]["differences"]] == ["networks"]
    # Table output counts them and exits 1 as well.
    table = cli("check", "--env", ENV, cwd=rt_project)
    assert table.code == 1
    assert f"{len(found)} finding(s)" in table.out


def test_the_demo_helper_injects_drift_that_check_finds(
    rt_project: Path, cli: Any, backend: PodmanBackend
) -> None:
    import os
    import subprocess
    import sys

    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    script = Path(__file__).resolve().parents[4] / "scripts" / "inject-drift"
    done = subprocess.run(
        [sys.executable, str(script), ENV, "api"],
        cwd=rt_project,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    node = done.stdout.strip()
    code, found = _findings(cli, rt_project)
    assert code == 1
    assert {(f["subject"], f["kind"]) for f in found} == {
        (node, "executable-added"),
        (node, "foreign-process"),
    }


def test_tampered_image_storage_is_found_naming_the_path_and_the_image(
    rt_project: Path, cli: Any, backend: PodmanBackend
) -> None:
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    web = _node(backend, rt_project, "web")
    image = backend.client.json("GET", f"/images/{backend.inspect(web)['Image']}/json")
    layer = Path(image["GraphDriver"]["Data"]["UpperDir"])
    page = layer / "srv" / "www" / "index.html"
    original = page.read_bytes()
    # The storage is shared by this test session: put the page back whatever
    # happens.
    try:
        page.write_bytes(b"<h1>defaced</h1>\n")
        code, found = _findings(cli, rt_project)
        assert code == 1
        # No node check sees it: the node's own layer is untouched.
        assert {f["kind"] for f in found} == {"image-tampered"}, found
        # The busybox test images share one layer: each image is named with
        # the nodes that read the tampered file.
        by_image = {f["details"]["image"]: f for f in found}
        assert set(by_image) == {"web", "api", "db"}
        tampered = by_image["web"]
        assert tampered["severity"] == "critical"
        assert tampered["subject"].startswith("image:web@sha256:")
        assert web in tampered["details"]["nodes"]
        assert "PR.DS-01" in tampered["csf"]
        [change] = tampered["details"]["changes"]
        assert change["path"] == "/srv/www/index.html"
        assert change["kind"] == "changed"
        assert set(change["attributes"]) == {"size", "sha256"}
        assert "respond --image" in tampered["details"]["remedy"]
        # The table says what to do about it.
        table = cli("check", "--env", ENV, cwd=rt_project)
        assert table.code == 1
        assert "respond --image IMAGE" in table.out
        # A node-only check skips the storage.
        quick = cli("check", "--env", ENV, "--no-image-content", cwd=rt_project)
        assert quick.code == 0, quick.out
        # OCSF: the finding is about an image, with one file activity.
        ocsf = cli("check", "--env", ENV, "--format", "ocsf", cwd=rt_project)
        lines = [json.loads(line) for line in ocsf.out.splitlines()]
        detections = [line for line in lines if line["class_uid"] == 2004]
        assert {d["resources"][0]["type"] for d in detections} == {"image"}
        updates = {line["file"]["path"] for line in lines if line["class_uid"] == 1001}
        assert updates == {"/srv/www/index.html"}
    finally:
        page.write_bytes(original)
    # Intact storage gives no finding.
    assert _findings(cli, rt_project) == (0, [])
