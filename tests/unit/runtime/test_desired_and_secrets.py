"""Desired state, identities, locks, image sources and sealed secrets."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from zerodrift.errors import (
    ConfigError,
    IntegrityError,
    OperationalError,
    VerificationError,
)
from zerodrift.reconcile.desired import desired_state
from zerodrift.reconcile.lock import environment_lock
from zerodrift.runtime.images import (
    OciLayoutSource,
    RefuseUnverified,
    ResolvedImage,
    UnsafeNoVerification,
)
from zerodrift.runtime.secrets import SecretResolver, open_sealed, seal
from zerodrift.spec import parse_spec
from zerodrift.state import Database

SPEC = b"""
version: 1
name: shop
images:
  web: {entrypoint: [/bin/web]}
  api: {entrypoint: [/bin/api]}
services:
  web:
    image: web
    replicas: 2
    ports: [{name: http, port: 8080}]
    talks_to: [api:http]
    health: {http: http/healthz}
    secrets: [{name: token, source: env:TOKEN}]
  api:
    image: api
    ports: [{name: http, port: 8081}]
environments:
  prod: {}
  dev: {overrides: {web: {replicas: 1}}}
"""
DIGESTS = {"web": "sha256:" + "a" * 64, "api": "sha256:" + "b" * 64}


def _desired(raw: bytes = SPEC, env: str = "prod", digests: dict[str, str] = DIGESTS):  # type: ignore[no-untyped-def]
    fleet = parse_spec(raw, "fleet.yaml").fleet
    return {d.name: d for d in desired_state(fleet, env, digests)}


def test_config_is_hardened_and_secret_free() -> None:
    web = _desired()["web"]
    assert web.config["user"] == "65534:65534"
    assert web.config["capabilities"] == []
    assert web.config["networks"] == {"zd-shop-prod-web-to-api": []}
    assert _desired()["api"].config["networks"] == {"zd-shop-prod-web-to-api": ["api"]}
    assert web.config["health"] == {
        "kind": "http",
        "port": 8080,
        "path": "/healthz",
        "interval": 5,
        "timeout": 3,
        "retries": 3,
        "start_period": 0,
    }
    assert web.config["secrets"] == [
        {"name": "token", "source": "env:TOKEN", "target": "/run/secrets/token"}
    ]


def test_identity_changes_with_image_or_any_setting_only() -> None:
    base = _desired()["web"].identity
    assert _desired()["web"].identity == base
    other_image = _desired(digests={**DIGESTS, "web": "sha256:" + "c" * 64})
    assert other_image["web"].identity != base
    more_env = _desired(SPEC.replace(b"replicas: 2", b"replicas: 2\n    env: {A: b}"))
    assert more_env["web"].identity != base
    # Replica count is not node configuration: same identity, more nodes.
    assert _desired(env="dev")["web"].replicas == 1


def test_root_user_and_duplicate_ports_are_refused() -> None:
    with pytest.raises(ConfigError) as info:
        _desired(SPEC.replace(b"entrypoint: [/bin/web]", b"user: '0:0'"))
    assert info.value.reference == "root-user-refused"
    twice = SPEC.replace(
        b"ports: [{name: http, port: 8080}]",
        b"ports: [{name: http, port: 8080}, {name: alt, port: 8080}]",
    )
    with pytest.raises(ConfigError) as info:
        _desired(twice)
    assert info.value.reference == "port-conflict"
    with pytest.raises(ConfigError) as info:
        _desired(digests={"web": DIGESTS["web"]})
    assert info.value.reference == "image-missing"


def test_environment_lock_excludes_a_second_holder(
    database_url: str, tmp_path: Path
) -> None:
    db = Database.open(database_url)
    try:
        with environment_lock(db, tmp_path, "prod"):
            with (
                pytest.raises(OperationalError) as info,
                environment_lock(db, tmp_path, "prod"),
            ):
                pass
            assert info.value.reference == "environment-locked"
            with environment_lock(db, tmp_path, "dev"):
                pass
        with environment_lock(db, tmp_path, "prod"):
            pass
    finally:
        db.close()


def _layout(root: Path) -> str:
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return "sha256:" + digest

    config = put(
        b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    )
    manifest = put(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config,
                    "size": 1,
                },
                "layers": [],
            }
        ).encode()
    )
    (root / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": manifest,
                        "size": 1,
                        "annotations": {"org.opencontainers.image.ref.name": "web"},
                    }
                ],
            }
        )
    )
    return manifest


def test_oci_layout_source_resolves_exports_and_detects_tampering(
    tmp_path: Path,
) -> None:
    digest = _layout(tmp_path)
    source = OciLayoutSource(tmp_path)
    assert source.resolve("web") == ResolvedImage("web", digest)
    with pytest.raises(ConfigError) as info:
        source.resolve("api")
    assert info.value.reference == "image-missing"
    archive = b"".join(source.export(digest))
    assert digest.partition(":")[2].encode() in archive
    source.blob_path(digest).write_bytes(b"{}")
    with pytest.raises(IntegrityError, match="is corrupt"):
        list(source.export(digest))
    with pytest.raises(ConfigError):
        OciLayoutSource(tmp_path / "nowhere").resolve("web")


def test_default_verifier_refuses_and_unsafe_one_needs_a_reason() -> None:
    image = ResolvedImage("web", "sha256:" + "a" * 64)
    with pytest.raises(VerificationError):
        RefuseUnverified().verify(image, "prod")
    with pytest.raises(ValueError, match="reason"):
        UnsafeNoVerification(" ")
    unsafe = UnsafeNoVerification("unit test of the runtime")
    unsafe.verify(image, "prod")
    assert unsafe.accepted == [image]


def test_sealed_secrets_round_trip_and_resolver_errors(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    sealed = seal(public, b"s3cret")
    assert b"s3cret" not in sealed
    assert open_sealed(key, sealed) == b"s3cret"
    with pytest.raises(ValueError, match="another key"):
        open_sealed(ec.generate_private_key(ec.SECP256R1()), sealed)
    (tmp_path / "token.sealed").write_bytes(sealed)
    (tmp_path / "plain").write_bytes(b"plain-value")
    resolver = SecretResolver(tmp_path, {"TOKEN": "from-env"}, lambda: key)
    assert resolver.value("web", "a", "env:TOKEN") == b"from-env"
    assert resolver.value("web", "b", "file:plain") == b"plain-value"
    assert resolver.value("web", "c", "sealed:token.sealed") == b"s3cret"
    for source, reference in [
        ("env:MISSING", "secret-unavailable"),
        ("file:missing", "secret-unavailable"),
        ("sealed:plain", "secret-unsealable"),
    ]:
        with pytest.raises(ConfigError) as info:
            resolver.value("web", "x", source)
        assert info.value.reference == reference
        assert "plain-value" not in info.value.message


def test_seal_command_output_opens_with_the_project_key(
    project: Path,
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io
    import sys

    from cryptography.hazmat.primitives import serialization

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"tok-123")))
    result = cli("seal", "secrets/token.sealed", cwd=project)
    assert result.code == 0, result.err
    sealed = (project / "secrets" / "token.sealed").read_bytes()
    assert b"tok-123" not in sealed
    pem = (project / ".zerodrift" / "keys" / "project.key").read_bytes()
    key = serialization.load_pem_private_key(
        pem, password=b"test-passphrase-not-secret"
    )
    assert open_sealed(key, sealed) == b"tok-123"  # type: ignore[arg-type]
    audit = cli("audit", "log", "--format", "jsonl", cwd=project)
    assert "secret.sealed" in audit.out
    assert "tok-123" not in audit.out
