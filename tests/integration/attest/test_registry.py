"""Push and pull through a real OCI registry (Debian's docker-registry 2.8)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PASSPHRASE
from tests.integration.attest.conftest import (
    Key,
    SignedImage,
    build_signed_image,
)
from tests.support.registry import Registry, free_port, running_registry
from zerodrift.errors import ConfigError, IntegrityError, OperationalError
from zerodrift.oci.descriptor import digest_bytes
from zerodrift.oci.layout import Layout
from zerodrift.oci.registry import (
    RegistryClient,
    parse_registry_url,
    pull_image,
    push_image,
)
from zerodrift.protect.keys import load_public_key, load_signer
from zerodrift.protect.verify import git_commit_exists, verify_image

pytestmark = pytest.mark.registry


def _client(
    registry: Registry,
    repository: str,
    *,
    username: str | None = None,
    password: str | None = None,
    ca_file: Path | None = None,
    plain_http: bool | None = None,
) -> RegistryClient:
    return RegistryClient(
        parse_registry_url(registry.url(repository)),
        username=username,
        password=password,
        ca_file=ca_file,
        plain_http=plain_http,
    )


def _referrer_digests(layout: Layout, digest: str) -> set[str]:
    return {d.digest for d in layout.referrers(digest)}


def test_url_parsing() -> None:
    ref = parse_registry_url("registry://127.0.0.1:5000/shop/web:v3")
    assert (ref.host, ref.port, ref.repository, ref.tag) == (
        "127.0.0.1", 5000, "shop/web", "v3",
    )  # fmt: skip
    pinned = parse_registry_url("registry://reg.example/shop/web@sha256:" + "a" * 64)
    assert pinned.digest == "sha256:" + "a" * 64
    assert pinned.port is None
    for bad in (
        "http://x/y",
        "registry://x",
        "registry://x/UPPER",
        "registry://x/y@md5:1",
    ):
        with pytest.raises(ConfigError):
            parse_registry_url(bad)


def test_push_then_pull_keeps_every_digest_and_verifies(
    registry: Registry, signed_image: SignedImage, tmp_path: Path
) -> None:
    source = signed_image.layout
    image = signed_image.image
    pushed = push_image(source, "web", _client(registry, "shop/web"), tag="web")
    assert pushed.digest == image.digest
    assert set(pushed.referrers) == _referrer_digests(source, image.digest)
    assert len(pushed.referrers) == 5  # golden manifest + four attestations

    # Another client sees the very same manifest bytes under the tag.
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false",
         f"docker://{registry.address}/shop/web:web"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    assert digest_bytes(raw) == image.digest

    # A second push sends no blob again.
    again = push_image(source, "web", _client(registry, "shop/web"), tag="web")
    assert again.blobs_sent == 0

    fresh = Layout.create(tmp_path / "pulled")
    pulled = pull_image(_client(registry, "shop/web"), image.digest, fresh, tag="web")
    assert pulled.digest == image.digest
    assert fresh.resolve("web").digest == image.digest
    assert _referrer_digests(fresh, image.digest) == _referrer_digests(
        source, image.digest
    )
    for digest in [image.digest, *pulled.referrers]:
        assert fresh.read_blob(digest) == source.read_blob(digest)
    fresh.check()

    report = verify_image(
        fresh,
        "web",
        allowed_keys=[signed_image.key.public],
        commit_exists=git_commit_exists(signed_image.repo),
    )
    assert report.digest == image.digest


def test_pull_by_tag_and_unknown_digest(
    registry: Registry, signed_image: SignedImage, tmp_path: Path
) -> None:
    push_image(signed_image.layout, "web", _client(registry, "shop/tagged"), tag="v1")
    fresh = Layout.create(tmp_path / "pulled")
    report = pull_image(_client(registry, "shop/tagged"), "v1", fresh, tag="web")
    assert report.digest == signed_image.image.digest
    with pytest.raises(ConfigError) as info:
        pull_image(
            _client(registry, "shop/tagged"), "sha256:" + "0" * 64, fresh, tag="x"
        )
    assert info.value.reference == "image-not-found"


def test_a_corrupt_blob_in_the_store_is_not_pushed(
    registry: Registry, signed_image: SignedImage
) -> None:
    manifest = signed_image.layout.read_json(signed_image.image)
    layer = manifest["layers"][0]["digest"]
    path = signed_image.layout.blob_path(layer)
    data = bytearray(path.read_bytes())
    data[10] ^= 0x80
    path.write_bytes(bytes(data))
    with pytest.raises((IntegrityError, OperationalError)):
        push_image(signed_image.layout, "web", _client(registry, "shop/bad"), tag="web")
    assert not _client(registry, "shop/bad").has_blob(layer)


def test_tls_and_basic_auth(
    secure_registry: Registry, signed_image: SignedImage, tmp_path: Path
) -> None:
    ca = secure_registry.ca_file
    good = _client(
        secure_registry, "shop/web", username="ci", password="registry-pass", ca_file=ca
    )
    report = push_image(signed_image.layout, "web", good, tag="web")
    fresh = Layout.create(tmp_path / "pulled")
    assert pull_image(good, report.digest, fresh, tag="web").digest == report.digest

    wrong = _client(
        secure_registry, "shop/web", username="ci", password="nope", ca_file=ca
    )
    with pytest.raises(ConfigError) as info:
        push_image(signed_image.layout, "web", wrong, tag="web")
    assert info.value.reference == "registry-auth-failed"

    untrusted = _client(secure_registry, "shop/web", username="ci",
                        password="registry-pass", plain_http=False)  # fmt: skip
    with pytest.raises(OperationalError) as tls:
        untrusted.ping()
    assert tls.value.reference == "registry-unreachable"
    assert "CERTIFICATE_VERIFY_FAILED" in tls.value.message
    plain = _client(secure_registry, "shop/web")
    with pytest.raises(ConfigError) as needs_tls:
        plain.ping()
    assert needs_tls.value.reference == "registry-needs-tls"


def test_cli_round_trip_is_audited_and_verifies(  # type: ignore[no-untyped-def]
    cli, project: Path, registry: Registry
) -> None:
    key = Key(
        load_signer(project / ".zerodrift/keys/project.key", PASSPHRASE.encode()),
        load_public_key("project", project / "keys/project.pub"),
    )
    signed = build_signed_image(
        project, key, repo=project, store=project / ".zerodrift" / "store"
    )
    url = registry.url("cli/web")
    pushed = cli("push", "web", "--to", url, "--format", "json", cwd=project)
    assert pushed.code == 0, pushed.err
    assert json.loads(pushed.out)["digest"] == signed.image.digest

    # Lose the local store, then get the image back from the registry.
    store = project / ".zerodrift" / "store"
    for item in sorted(store.rglob("*"), reverse=True):
        item.rmdir() if item.is_dir() else item.unlink()
    pulled = cli("pull", f"{url}@{signed.image.digest}", "--as", "web", cwd=project)
    assert pulled.code == 0, pulled.err
    assert cli("verify", "web", "--env", "prod", cwd=project).code == 0

    log = cli("audit", "log", "--action", "image", "--format", "json", cwd=project)
    actions = [r["action"] for r in json.loads(log.out)["records"]]
    assert actions == ["image.pushed", "image.pulled", "image.verified"]


def test_cli_registry_down_is_exit_4(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    url = f"registry://127.0.0.1:{free_port()}/shop/web@sha256:" + "a" * 64
    result = cli("pull", url, cwd=project)
    assert result.code == 4
    assert "registry-unreachable" in result.err
    assert "Traceback" not in result.err
    bad = cli("pull", "registry://127.0.0.1/shop/web", cwd=project)
    assert bad.code == 3
    assert "registry-url-invalid" in bad.err


def test_a_tampered_blob_in_the_registry_is_refused_and_nothing_is_tagged(
    registry: Registry, signed_image: SignedImage, tmp_path: Path
) -> None:
    push_image(signed_image.layout, "web", _client(registry, "shop/evil"), tag="web")
    layer = signed_image.layout.read_json(signed_image.image)["layers"][0]["digest"]
    hex_digest = layer.removeprefix("sha256:")
    stored = next(
        registry.folder.glob(
            f"storage/docker/registry/v2/blobs/sha256/*/{hex_digest}/data"
        )
    )
    data = bytearray(stored.read_bytes())
    data[5] ^= 0x10
    stored.write_bytes(bytes(data))

    fresh = Layout.create(tmp_path / "pulled")
    with pytest.raises(IntegrityError) as info:
        pull_image(
            _client(registry, "shop/evil"), signed_image.image.digest, fresh, tag="web"
        )
    assert info.value.reference == "blob-digest-mismatch"
    assert not fresh.has_blob(layer)
    assert fresh.tags() == {}


def test_token_auth_registry(signed_image: SignedImage, tmp_path: Path) -> None:
    with running_registry(username="ci", password="token-pass", token_auth=True) as reg:
        anonymous = _client(reg, "shop/web")
        with pytest.raises(ConfigError) as info:
            push_image(signed_image.layout, "web", anonymous, tag="web")
        assert info.value.reference == "registry-auth-failed"

        client = _client(reg, "shop/web", username="ci", password="token-pass")
        report = push_image(signed_image.layout, "web", client, tag="web")
        fresh = Layout.create(tmp_path / "pulled")
        puller = _client(reg, "shop/web", username="ci", password="token-pass")
        pulled = pull_image(puller, report.digest, fresh, tag="web")
        assert pulled.referrers == report.referrers
        assert "auth.user.name=ci" in (reg.folder / "registry.log").read_text()
