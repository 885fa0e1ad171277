"""The create request every node gets: hardened whatever the spec says."""

from __future__ import annotations

from zerodrift.reconcile.desired import desired_state
from zerodrift.runtime._spec import spec_generator
from zerodrift.runtime.backend import NodeSpec
from zerodrift.spec import parse_spec

SPEC = b"""
version: 1
name: shop
images:
  db: {writable: [/var/run/db]}
services:
  db:
    image: db
    capabilities: [NET_BIND_SERVICE]
    volumes: [{name: data, path: /var/lib/db}]
    writable: [/tmp]
    resources: {memory: 128Mi, cpus: 0.5, pids: 100}
    secrets:
      - {name: pw, source: env:PW}
      - {name: token, source: env:TOKEN, target: API_TOKEN}
environments: {prod: {}}
"""


def _body(raw: bytes = SPEC) -> dict[str, object]:
    fleet = parse_spec(raw, "fleet.yaml").fleet
    (want,) = desired_state(fleet, "prod", {"db": "sha256:" + "d" * 64})
    spec = NodeSpec("prod-db-1", "localhost/zerodrift/image:d", want.image_digest,
                    want.config, {"io.zerodrift.managed": "true"})  # fmt: skip
    secrets = [{"Source": "zd.prod-db-1.pw", "Target": "/run/secrets/pw"}]
    return spec_generator(spec, secrets, {"API_TOKEN": "zd.prod-db-1.token"})


def test_hardening_is_always_on() -> None:
    body = _body()
    assert body["read_only_filesystem"] is True
    assert body["read_write_tmpfs"] is False
    assert body["privileged"] is False
    assert body["no_new_privileges"] is True
    assert body["cap_drop"] == ["ALL"]
    assert body["cap_add"] == ["NET_BIND_SERVICE"]
    assert body["user"] == "65534:65534"
    assert body["netns"] == {"nsmode": "none"}  # no flows, no network
    assert body["resource_limits"] == {
        "memory": {"limit": 128 * 1024 * 1024},
        "cpu": {"quota": 50_000, "period": 100_000},
        "pids": {"limit": 100},
    }


def test_only_declared_paths_are_writable_and_secrets_stay_out() -> None:
    body = _body()
    mounts = {m["destination"]: m["options"] for m in body["mounts"]}  # type: ignore[attr-defined]
    assert set(mounts) == {"/tmp", "/var/run/db", "/run/secrets"}
    assert "noexec" in mounts["/run/secrets"]
    assert body["volumes"] == [
        {"Name": "zd-prod-db-data", "Dest": "/var/lib/db", "Options": []}
    ]
    assert body["secret_env"] == {"API_TOKEN": "zd.prod-db-1.token"}
    assert body["labels"]["io.zerodrift.secret-env"] == "API_TOKEN"  # type: ignore[index]
    assert "API_TOKEN" not in body["env"]  # type: ignore[operator]
