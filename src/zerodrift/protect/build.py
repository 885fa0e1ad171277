"""Reproducible image builds into the OCI store.

:func:`build_image` turns one recipe of the fleet spec into a tagged image in
an OCI layout. It only orchestrates; each step is one private helper:

1. source: the spec repository's HEAD commit and its time, which becomes
   ``SOURCE_DATE_EPOCH`` (ADR 0013);
2. base: ``scratch``, a Debian base from mmdebstrap pinned by the lock file,
   or a pinned OCI image, extracted safely;
3. overlay: the recipe's ``copy`` items and ``writable`` folders;
4. layers: one deterministic layer for the base, one for the overlay;
5. rootfs: the final root folder, unpacked from the stored layers, so every
   later check sees exactly what the image holds;
6. golden manifest: from the layers' tar entries, with its Merkle root;
7. hardening: the checks of :mod:`zerodrift.protect.hardening`;
8. config and manifest: stored, not yet tagged;
9. referrers: the golden manifest itself, then (with a key) the signed
   provenance, SBOM and golden-manifest statements;
10. tag: one atomic rewrite of ``index.json`` publishes the image.

Until step 10 nothing is tagged, so a build that fails or is killed leaves
only unreferenced blobs (and untagged referrers), which ``verify`` refuses.
Two builds of the same commit give the same manifest digest, wherever they
run; ``zerodrift build --check-reproducible`` proves it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from securesystemslib.signer import Signer

from zerodrift._internal.canonical import canonical_digest
from zerodrift.detect.manifest import (
    ARTIFACT_TYPE as GOLDEN_ARTIFACT_TYPE,
)
from zerodrift.detect.manifest import (
    MEDIA_TYPE as GOLDEN_MEDIA_TYPE,
)
from zerodrift.detect.manifest import GoldenManifest, merge_layers
from zerodrift.errors import ConfigError, OperationalError
from zerodrift.oci.descriptor import (
    MEDIA_TYPE_CONFIG,
    Descriptor,
    encode,
    image_manifest,
)
from zerodrift.oci.layout import Layout
from zerodrift.protect.layer import Compression, Layer, LayerOptions, write_layer
from zerodrift.protect.lock import (
    LOCK_FILE,
    Lock,
    LockedBase,
    LockedPackage,
    check_resolution,
)
from zerodrift.protect.provenance import ResolvedDependency
from zerodrift.protect.rootfs import (
    Tree,
    assemble_overlay,
    build_debian_base,
    debian_keep,
    decompressed,
    extract_oci_base,
    extract_tar,
)
from zerodrift.spec.models import Fleet, Image

if TYPE_CHECKING:
    from zerodrift.protect.hardening import HardeningReport

__all__ = [
    "BuildOptions",
    "BuildResult",
    "SourceState",
    "build_image",
    "build_images",
    "source_state",
]

_logger = logging.getLogger(__name__)

_DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class SourceState:
    """Where the spec comes from, and the time stamp the build uses.

    Attributes:
        commit: HEAD of the spec repository, or ``None`` outside git.
        dirty: Whether the working tree differs from ``commit``.
        epoch: ``SOURCE_DATE_EPOCH`` in seconds.
    """

    commit: str | None
    dirty: bool
    epoch: int


@dataclass(frozen=True)
class BuildOptions:
    """Settings for a build.

    Attributes:
        cache_dir: Where base tarballs and ``.deb`` files are cached.
        work_dir: Where temporary folders go (default: the system's).
        compression: Layer compression.
        update_lock: Accept a changed Debian resolution and rewrite the lock.
        signer: Signs attestations; ``None`` builds unsigned (with a warning).
        today: The date waivers are checked against (default: today).
        progress: Called with one line per step, for the user.
    """

    cache_dir: Path
    work_dir: Path | None = None
    compression: Compression = "gzip"
    update_lock: bool = False
    signer: Signer | None = None
    today: date | None = None
    progress: Progress | None = None


@dataclass(frozen=True)
class BuildResult:
    """Everything a build produced and learned.

    Attributes:
        image_name: The recipe's name in the spec (also the tag).
        image: The image manifest's descriptor.
        config: The image config's descriptor.
        layers: The layers, base first.
        layout_path: The OCI layout holding the image.
        rootfs: The unpacked final root folder; it exists only while the build
            runs (hooks may read it), and is deleted afterwards.
        golden: The golden manifest.
        golden_manifest: The stored golden-manifest artifact (a referrer).
        recipe_digest: Canonical digest of the recipe.
        commit: The spec repository's commit, or ``None``.
        dirty: Whether the repository had uncommitted changes.
        source_date_epoch: The build's time stamp (seconds).
        packages: The Debian packages the base resolved to.
        copied: Image paths filled from the repository by ``copy``.
        lock_entry: The lock entry of the base (Debian bases only).
        sbom: CycloneDX JSON text.
        dependencies: Inputs by digest, for provenance.
        attestations: Stored signed attestations (empty when unsigned).
        started_at: When the build started.
        finished_at: When the build finished.
    """

    image_name: str
    image: Descriptor
    config: Descriptor
    layers: tuple[Layer, ...]
    layout_path: Path
    rootfs: Path
    golden: GoldenManifest
    golden_manifest: Descriptor
    recipe_digest: str
    commit: str | None
    dirty: bool
    source_date_epoch: int
    packages: tuple[LockedPackage, ...]
    copied: tuple[str, ...]
    lock_entry: LockedBase | None
    sbom: str
    dependencies: tuple[ResolvedDependency, ...]
    started_at: datetime
    finished_at: datetime
    attestations: tuple[Descriptor, ...] = ()

    @property
    def manifest_digest(self) -> str:
        """The image manifest digest (what ``verify`` and deploys pin)."""
        return self.image.digest

    @property
    def config_digest(self) -> str:
        """The image config digest."""
        return self.config.digest

    @property
    def merkle_root(self) -> str:
        """The golden manifest's Merkle root."""
        return self.golden.merkle_root

    @property
    def entries(self) -> int:
        """How many paths the golden manifest lists."""
        return len(self.golden.entries)


@dataclass
class _Build:
    """State of one build while it runs (private)."""

    name: str
    image: Image
    project_root: Path
    layout: Layout
    options: BuildOptions
    source: SourceState
    work: Path
    locked: LockedBase | None
    lock_path: Path
    started_at: datetime
    has_health_check: bool
    base: Tree = field(init=False)
    overlay: Tree = field(init=False)
    lock_entry: LockedBase | None = None
    base_digest: str | None = None
    copied: list[str] = field(default_factory=list)
    hardening: HardeningReport | None = None

    def __post_init__(self) -> None:
        self.base = Tree(self.work / "base")
        self.overlay = Tree(self.work / "overlay")
        self.base.root.mkdir()
        self.overlay.root.mkdir()

    def say(self, message: str) -> None:
        if self.options.progress is not None:
            self.options.progress(f"{self.name}: {message}")


# --- Public entry points ------------------------------------------------------------


def source_state(
    project_root: Path,
    environ: Mapping[str, str] | None = None,
    *,
    sources: Sequence[str] = (),
) -> SourceState:
    """Find the commit, dirty flag and ``SOURCE_DATE_EPOCH`` of a project.

    Inside git, the epoch is the HEAD commit's committer time; a dirty tree
    is allowed but reported (ADR 0013). Files that git ignores under
    ``sources`` (the paths images copy) make the tree dirty too: they would
    go into the image without being in the commit. Outside git,
    ``SOURCE_DATE_EPOCH`` from the environment is used if set.

    Raises:
        ConfigError: The project is not in a git repository with a commit and
            ``SOURCE_DATE_EPOCH`` is not set.
    """
    env = os.environ if environ is None else environ
    head = _git(project_root, "log", "-1", "--format=%H %ct")
    if head is None:
        value = env.get("SOURCE_DATE_EPOCH", "")
        if value.isdigit():
            return SourceState(None, True, int(value))
        raise ConfigError(
            f"{project_root} is not in a git repository with a commit",
            hint="reproducible builds take their time stamp from the spec's "
            "commit: run 'git init && git add -A && git commit', or set "
            "SOURCE_DATE_EPOCH",
            reference="build-needs-commit",
        )
    commit, _, epoch = head.partition(" ")
    status = _git(project_root, "status", "--porcelain", "--", ".")
    ignored = sources and _git(
        project_root, "status", "--porcelain", "--ignored", "--", *sources
    )
    return SourceState(commit, bool(status or ignored), int(epoch))


def build_images(
    project_root: Path,
    fleet: Fleet,
    names: Sequence[str],
    layout: Layout,
    options: BuildOptions,
) -> list[BuildResult]:
    """Build the named images (all if empty), updating the lock file.

    The lock is saved after each image that built, so an error in a later
    image does not lose what an earlier one resolved.

    Raises:
        ConfigError: An unknown image name, a bad recipe, or a lock mismatch.
        VerificationError: A hardening check failed.
        OperationalError: A tool failed or the store cannot be written.
    """
    unknown = sorted(set(names) - set(fleet.images))
    if unknown:
        raise ConfigError(
            f"no image named {', '.join(map(repr, unknown))} in the spec",
            hint="images: " + ", ".join(sorted(fleet.images)),
            reference="image-unknown",
        )
    lock_path = project_root / LOCK_FILE
    lock = Lock.load(lock_path)
    if not names:
        # A full build also forgets images that left the spec.
        lock = lock.without([n for n in lock.images if n not in fleet.images])
    copied = sorted({c.src for image in fleet.images.values() for c in image.copy_})
    source = source_state(project_root, sources=copied)
    if source.dirty:
        _warn_dirty(source)
    results = []
    for name in names or sorted(fleet.images):
        health = any(s.health for s in fleet.services.values() if s.image == name)
        lock = _share_entry(lock, name, fleet.images[name])
        result = build_image(
            project_root, name, fleet.images[name], layout, options,
            lock=lock, source=source, has_health_check=health,
        )  # fmt: skip
        if result.lock_entry is not None:
            lock = lock.with_entry(name, result.lock_entry)
            lock.save(lock_path)
        results.append(result)
    if lock_path.exists():
        lock.save(lock_path)
    return results


def _warn_dirty(source: SourceState) -> None:
    where = f"commit {source.commit[:12]}" if source.commit else "no commit"
    message = (
        f"the spec repository has uncommitted changes; the images are "
        f"stamped with {where} but may not match it (recorded as dirty)"
    )
    _logger.warning("%s", message)


def _share_entry(lock: Lock, name: str, image: Image) -> Lock:
    """Give a new image the lock entry of another image with the same request.

    Images built from the same base request then share one base tarball (and
    one base layer in the store) instead of resolving the mirror again.
    """
    current = lock.images.get(name)
    if current is not None and current.request_matches(
        image.base, image.variant, image.packages
    ):
        return lock
    for entry in lock.images.values():
        if entry.request_matches(image.base, image.variant, image.packages):
            return lock.with_entry(name, entry)
    return lock


def build_image(
    project_root: Path,
    name: str,
    image: Image,
    layout: Layout,
    options: BuildOptions,
    *,
    lock: Lock,
    source: SourceState,
    has_health_check: bool,
) -> BuildResult:
    """Build one recipe into ``layout`` and tag it ``name``.

    Args:
        project_root: The folder holding ``fleet.yaml`` (copy sources are
            relative to it).
        name: The image's name in the spec.
        image: The recipe.
        layout: The OCI store.
        options: Build settings.
        lock: The current lock file (not written here).
        source: Commit and ``SOURCE_DATE_EPOCH`` (see :func:`source_state`).
        has_health_check: Whether a service of this image declares one.

    Returns:
        The build's result; its ``lock_entry`` is what the lock should hold.

    Raises:
        ConfigError: A bad recipe, an unsafe input or a lock mismatch.
        VerificationError: A hardening check failed.
        OperationalError: A tool failed or the store cannot be written.
    """
    started = datetime.now(UTC)
    try:
        if options.work_dir is not None:
            options.work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(
            prefix="zerodrift-build-", dir=options.work_dir
        ) as tmp:
            build = _Build(
                name, image, project_root, layout, options, source, Path(tmp),
                lock.images.get(name), project_root / LOCK_FILE, started,
                has_health_check,
            )  # fmt: skip
            return _run_steps(build)
    except OSError as exc:
        raise OperationalError(
            f"image {name!r}: {exc.strerror or exc} ({exc.filename or 'no file'})",
            hint="check free disk space and permissions of the work and cache folders",
            reference="build-io-failed",
        ) from exc


def _run_steps(build: _Build) -> BuildResult:
    """The build steps in order (see the module docstring)."""
    _resolve_base(build)
    _assemble_overlay(build)
    layers = _write_layers(build)
    rootfs = _unpack_rootfs(build, layers)
    golden = _golden_manifest(build, layers)
    _check_hardening(build, rootfs)
    config, manifest = _store_image(build, layers)
    golden_desc = _store_golden_manifest(build, manifest, golden)
    result = _result(
        build,
        layers,
        rootfs=rootfs,
        golden=golden,
        golden_desc=golden_desc,
        config=config,
        manifest=manifest,
    )
    result = _attest(build, result)
    _tag(build, result)
    return result


# --- Steps ------------------------------------------------------------------------


def _resolve_base(build: _Build) -> None:
    base = build.image.base
    origin = f"images.{build.name}.base"
    if base == "scratch":
        return
    if base.startswith("debian:"):
        _debian_base(build, origin)
        return
    build.say(f"extracting {base.partition('@')[0]}")
    build.base_digest = extract_oci_base(
        base, build.project_root, build.base, build.work, origin=origin
    )


def _debian_base(build: _Build, origin: str) -> None:
    image, locked = build.image, build.locked
    build.options.cache_dir.mkdir(parents=True, exist_ok=True)
    build.say(f"base {image.base} ({image.variant}: {', '.join(image.packages)})")
    result = build_debian_base(
        image,
        epoch=build.source.epoch,
        cache_dir=build.options.cache_dir,
        locked=locked,
        origin=origin,
    )
    same_request = locked is not None and locked.request_matches(
        image.base, image.variant, image.packages
    )
    if same_request and locked is not None and result.locked != locked:
        if not build.options.update_lock:
            check_resolution(
                build.name, locked, result.locked, lock_path=build.lock_path
            )
        build.say("lock updated: the base resolved differently (--update-lock)")
    elif not same_request:
        build.say(f"lock: new entry for {image.base} {sorted(image.packages)}")
    build.lock_entry = result.locked
    with result.tarball.open("rb") as handle:
        extract_tar(handle, build.base, origin=origin, keep=debian_keep)


def _assemble_overlay(build: _Build) -> None:
    build.copied = assemble_overlay(
        build.image, build.name, build.project_root, build.base, build.overlay,
        epoch=build.source.epoch,
    )  # fmt: skip


def _write_layers(build: _Build) -> list[Layer]:
    layers: list[Layer] = []
    for tree, label in ((build.base, "base"), (build.overlay, "overlay")):
        # Empty trees make no layer, except that an image keeps at least one
        # (an empty overlay), which every runtime accepts.
        if not any(tree.root.iterdir()) and (layers or label == "base"):
            continue
        options = LayerOptions(
            source_date_epoch=build.source.epoch,
            owners=tree.owners,
            allowed_specials=frozenset(tree.specials),
            compression=build.options.compression,
            origin=f"images.{build.name}.{'base' if label == 'base' else 'copy'}",
        )
        layer = write_layer(tree.root, build.layout, options)
        build.say(
            f"{label} layer {layer.descriptor.digest[7:19]} "
            f"({layer.size / 1e6:.1f} MB tar, {layer.descriptor.size / 1e6:.1f} MB)"
        )
        layers.append(layer)
    return layers


def _unpack_rootfs(build: _Build, layers: Sequence[Layer]) -> Path:
    rootfs = Tree(build.work / "rootfs")
    rootfs.root.mkdir()
    for layer in layers:
        with build.layout.open_blob(
            layer.descriptor.digest, size=layer.descriptor.size
        ) as reader:
            stream = decompressed(
                reader,  # type: ignore[arg-type]
                layer.descriptor.media_type,
                f"images.{build.name}",
            )
            extract_tar(stream, rootfs, origin=f"images.{build.name}")
            reader.verify_rest()
    return rootfs.root


def _golden_manifest(build: _Build, layers: Sequence[Layer]) -> GoldenManifest:
    golden = GoldenManifest.build(
        build.name, merge_layers(layer.entries for layer in layers)
    )
    build.say(
        f"golden manifest: {len(golden.entries)} paths, root {golden.merkle_root[:12]}"
    )
    return golden


def _check_hardening(build: _Build, rootfs: Path) -> None:
    from zerodrift.protect.hardening import check_image, enforce

    report = check_image(
        rootfs,
        build.image,
        image_name=build.name,
        has_health_check=build.has_health_check,
        today=build.options.today or date.today(),
    )
    enforce(report)
    build.hardening = report
    build.say(f"hardening: {len(report.findings)} finding(s), none blocking")


def _image_config(build: _Build, layers: Sequence[Layer]) -> dict[str, Any]:
    image = build.image
    created = _iso(build.source.epoch)
    env = [f"{k}={v}" for k, v in sorted(image.env.items())]
    if "PATH" not in image.env:
        env.insert(0, _DEFAULT_PATH)
    config: dict[str, Any] = {
        "User": image.user,
        "Env": env,
        "WorkingDir": image.workdir,
    }
    if image.entrypoint:
        config["Entrypoint"] = list(image.entrypoint)
    if image.cmd:
        config["Cmd"] = list(image.cmd)
    if image.labels:
        config["Labels"] = dict(sorted(image.labels.items()))
    return {
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [
            {"created": created, "created_by": f"zerodrift build: {label}"}
            for label in ("base " + image.base, "copy and writable paths")[
                : len(layers)
            ]
        ],
    }


def _store_image(
    build: _Build, layers: Sequence[Layer]
) -> tuple[Descriptor, Descriptor]:
    config = build.layout.write_blob(
        encode(_image_config(build, layers)), MEDIA_TYPE_CONFIG
    )
    document = image_manifest(config, [layer.descriptor for layer in layers])
    manifest = build.layout.store_manifest(document)
    build.say(f"manifest {manifest.digest}")
    return config, manifest


def _store_golden_manifest(
    build: _Build, manifest: Descriptor, golden: GoldenManifest
) -> Descriptor:
    return build.layout.add_artifact(
        manifest,
        GOLDEN_ARTIFACT_TYPE,
        [(golden.to_json(), GOLDEN_MEDIA_TYPE)],
        annotations={"org.opencontainers.image.created": _iso(build.source.epoch)},
    )


def _result(
    build: _Build,
    layers: Sequence[Layer],
    *,
    rootfs: Path,
    golden: GoldenManifest,
    golden_desc: Descriptor,
    config: Descriptor,
    manifest: Descriptor,
) -> BuildResult:
    packages = build.lock_entry.packages if build.lock_entry else ()
    sbom = _sbom(build, rootfs, manifest, packages)
    return BuildResult(
        image_name=build.name,
        image=manifest,
        config=config,
        layers=tuple(layers),
        layout_path=build.layout.path,
        rootfs=rootfs,
        golden=golden,
        golden_manifest=golden_desc,
        recipe_digest=canonical_digest(
            build.image.model_dump(mode="json", by_alias=True)
        ),
        commit=build.source.commit,
        dirty=build.source.dirty,
        source_date_epoch=build.source.epoch,
        packages=tuple(packages),
        copied=tuple(build.copied),
        lock_entry=build.lock_entry,
        sbom=sbom,
        dependencies=tuple(_dependencies(build, rootfs, packages)),
        started_at=build.started_at,
        finished_at=datetime.now(UTC),
    )


def _sbom(
    build: _Build, rootfs: Path, manifest: Descriptor, packages: Sequence[LockedPackage]
) -> str:
    from zerodrift.protect.sbom import (
        DebPackage,
        build_sbom,
        file_components,
        merge_packages,
        read_dpkg_status,
    )

    resolved = [
        DebPackage(p.name, p.version, p.architecture, deb_sha256=p.sha256)
        for p in packages
    ]
    return build_sbom(
        build.name,
        manifest.digest,
        merge_packages(read_dpkg_status(rootfs), resolved),
        file_components(rootfs, build.copied),
        created=datetime.fromtimestamp(build.source.epoch, UTC),
    )


def _dependencies(
    build: _Build, rootfs: Path, packages: Sequence[LockedPackage]
) -> list[ResolvedDependency]:
    from zerodrift.protect.sbom import file_components

    deps = [
        ResolvedDependency(
            p.name,
            "sha256:" + p.sha256,
            f"pkg:deb/debian/{p.name}@{p.version}?arch={p.architecture}",
        )
        for p in packages
    ]
    if build.base_digest is not None:
        deps.append(ResolvedDependency("base", build.base_digest, build.image.base))
    for item in file_components(rootfs, build.copied):
        deps.append(ResolvedDependency(item.path, "sha256:" + item.sha256))
    return deps


def _attest(build: _Build, result: BuildResult) -> BuildResult:
    signer = build.options.signer
    if signer is None:
        _logger.warning(
            "image %s is not signed (no signing key; create one with 'zerodrift "
            "keygen'): 'zerodrift verify' will refuse it",
            build.name,
        )
        return result
    from zerodrift.protect.attest import attest_build

    # The hardening report is signed too: it is the evidence that the image
    # passed its checks, with which findings were waived, on which day.
    stored = attest_build(
        result,
        build.layout,
        signer,
        hardening=build.hardening,
        checked_on=build.options.today or date.today(),
    )
    build.say(f"signed {len(stored)} attestation(s)")
    return replace(result, attestations=tuple(stored))


def _tag(build: _Build, result: BuildResult) -> None:
    build.layout.tag(build.name, result.image)
    build.say(f"tagged {build.name} -> {result.image.digest}")


# --- Helpers ------------------------------------------------------------------------


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
