"""A small signed image built by hand into a real OCI layout, for verify tests.

The image has one gzip layer made with :mod:`tarfile`, a golden manifest
computed from that layer, a CycloneDX SBOM, and the three attestations signed
with a real ECDSA key, exactly as :func:`zerodrift.protect.attest.attest_build`
stores them for a build.
"""

from __future__ import annotations

import gzip
import io
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import zstandard
from securesystemslib.signer import CryptoSigner

from tests.support.registry import Registry, running_registry
from zerodrift.detect.manifest import (
    ARTIFACT_TYPE,
    MEDIA_TYPE,
    GoldenManifest,
    entries_from_tar,
)
from zerodrift.oci.descriptor import (
    MEDIA_TYPE_LAYER_GZIP,
    MEDIA_TYPE_LAYER_ZSTD,
    Descriptor,
)
from zerodrift.oci.layout import Layout
from zerodrift.protect.attest import attest_build
from zerodrift.protect.hardening import PathFacts, evaluate
from zerodrift.protect.keys import (
    PublicKey,
    generate_private_key,
    load_public_key,
    load_signer,
    write_keypair,
)
from zerodrift.protect.provenance import ResolvedDependency
from zerodrift.protect.sbom import DebPackage, FileComponent, build_sbom
from zerodrift.spec.models import Image

PASS = b"attest-test-passphrase"
TODAY = date(2026, 1, 1)
_MODES = {"dir": stat.S_IFDIR, "file": stat.S_IFREG}
CREATED = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Key:
    """A real key pair: the signer and the public key as the spec trusts it."""

    signer: CryptoSigner
    public: PublicKey


@dataclass(frozen=True)
class FakeBuild:
    """The facts a build hands to attest_build (built by hand here)."""

    image_name: str
    image: Descriptor
    recipe_digest: str
    commit: str | None
    started_at: datetime
    finished_at: datetime
    dependencies: Sequence[ResolvedDependency]
    sbom: str
    golden_manifest: Descriptor
    merkle_root: str
    entries: int


@dataclass(frozen=True)
class SignedImage:
    """A layout holding one signed image, and the repository that built it."""

    layout: Layout
    image: Descriptor
    repo: Path
    commit: str
    key: Key


def make_key(folder: Path, name: str) -> Key:
    """Generate a key pair under ``folder``."""
    private = folder / f"{name}.key"
    public = folder / f"{name}.pub"
    write_keypair(generate_private_key(), private, public, PASS)
    return Key(load_signer(private, PASS), load_public_key(name, public))


def _layer(*, zstd: bool = False) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("srv/www/index.html", b"<h1>shop</h1>\n"),):
            for folder in ("srv", "srv/www"):
                if folder not in tar.getnames():
                    info = tarfile.TarInfo(folder)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o444
            tar.addfile(info, io.BytesIO(data))
        tmp = tarfile.TarInfo("tmp")
        tmp.type = tarfile.DIRTYPE
        tmp.mode = 0o1777
        tar.addfile(tmp)
    if zstd:
        return bytes(zstandard.ZstdCompressor().compress(raw.getvalue()))
    return gzip.compress(raw.getvalue(), mtime=0)


def git_commit(repo: Path) -> str:
    """Commit everything in ``repo`` (creating the repository); return the commit."""
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "spec"], check=True)
    return subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def build_signed_image(
    root: Path,
    key: Key,
    *,
    drop_golden_entry: bool = False,
    repo: Path | None = None,
    store: Path | None = None,
    zstd: bool = False,
    layer_gzip: bytes | None = None,
    sign: bool = True,
) -> SignedImage:
    """Commit a spec repository, store an image, sign its attestations.

    Args:
        root: Where to create the repository and store when not given.
        key: The signing key.
        drop_golden_entry: Leave one path out of the golden manifest, as a
            buggy or malicious build would.
        repo: An existing folder to commit (instead of a new repository).
        store: Where the layout goes (default ``root/store``).
        zstd: Compress the layer with zstd instead of gzip.
        layer_gzip: A gzip layer to use instead of the small default one.
        sign: Store the signed attestations (``False``: an unsigned build).
    """
    if repo is None:
        repo = root / "repo"
        repo.mkdir(parents=True)
        (repo / "fleet.yaml").write_text("version: 1\nname: shop\n")
    commit = git_commit(repo)
    layout = Layout.open_or_create(store or root / "store")
    layer_bytes = layer_gzip if layer_gzip is not None else _layer(zstd=zstd)
    media_type = MEDIA_TYPE_LAYER_ZSTD if zstd else MEDIA_TYPE_LAYER_GZIP
    layer = layout.write_blob(layer_bytes, media_type)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"User": "65534:65534"},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]},
    }
    image = layout.add_image(config, [layer], tag="web")
    plain = _layer() if zstd else layer_bytes
    entries = entries_from_tar(io.BytesIO(plain))
    scan_facts = [PathFacts(e.path, _MODES[e.type] | e.mode) for e in entries]
    golden = GoldenManifest.build("web", entries[:-1] if drop_golden_entry else entries)
    golden_desc = layout.add_artifact(
        image, ARTIFACT_TYPE, [(golden.to_json(), MEDIA_TYPE)]
    )
    sbom = build_sbom(
        "web",
        image.digest,
        [DebPackage("busybox-static", "1:1.35.0-4+b3", "amd64")],
        [FileComponent("/srv/www/index.html", "1" * 64, 14)],
        created=CREATED,
    )
    result = FakeBuild(
        image_name="web",
        image=image,
        recipe_digest="sha256:" + "2" * 64,
        commit=commit,
        started_at=CREATED,
        finished_at=CREATED,
        dependencies=[ResolvedDependency("busybox-static", "sha256:" + "3" * 64)],
        sbom=sbom,
        golden_manifest=golden_desc,
        merkle_root=golden.merkle_root,
        entries=len(golden.entries),
    )
    if sign:
        report = evaluate(
            scan_facts, Image(), image_name="web", has_health_check=True, today=TODAY
        )
        attest_build(result, layout, key.signer, hardening=report, checked_on=TODAY)
    return SignedImage(layout, image, repo, commit, key)


@pytest.fixture(scope="session")
def signed_image_template(tmp_path_factory: pytest.TempPathFactory) -> SignedImage:
    """One signed image per session; tests copy it before changing anything."""
    root = tmp_path_factory.mktemp("signed")
    return build_signed_image(root, make_key(root / "keys", "project"))


@pytest.fixture
def signed_image(signed_image_template: SignedImage, tmp_path: Path) -> SignedImage:
    """A private copy of the signed image (its layout may be damaged freely)."""
    shutil.copytree(signed_image_template.layout.path, tmp_path / "store")
    return SignedImage(
        Layout.open(tmp_path / "store"),
        signed_image_template.image,
        signed_image_template.repo,
        signed_image_template.commit,
        signed_image_template.key,
    )


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    """A real docker-registry on loopback (plain HTTP, no auth), per session."""
    with running_registry() as server:
        yield server


@pytest.fixture(scope="session")
def secure_registry() -> Iterator[Registry]:
    """A real docker-registry with TLS and basic auth, per session."""
    with running_registry(username="ci", password="registry-pass", tls=True) as server:
        yield server
