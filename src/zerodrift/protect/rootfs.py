"""Root folders for image builds: bases, safe extraction, and ``copy`` items.

Three kinds of base (the recipe's ``base``):

- ``scratch``: nothing.
- ``debian:<suite>``: built with ``mmdebstrap`` from the recipe's variant and
  packages, with ``SOURCE_DATE_EPOCH`` pinned by the lock file, as a tarball
  cached under ``.zerodrift/cache/base/`` (see :mod:`zerodrift.protect.lock`).
  Device nodes under ``/dev`` and the host's ``/etc/hostname`` and
  ``/etc/resolv.conf`` are dropped: the container runtime provides them.
- ``oci-layout:<dir>@sha256:<digest>`` and ``oci-archive:<file>@sha256:...``:
  an existing image, pinned by manifest digest, flattened into one folder.

Every archive is extracted by :func:`extract_tar`, which refuses absolute
names, ``..`` components, hard links leaving the archive and writes through
symbolic links, so a hostile base cannot touch the build host.

On-disk ownership is not used: owners are collected from tar headers and
from the recipe into :attr:`Tree.owners`, which the layer writer reads.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import stat
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from zerodrift.errors import ConfigError, IntegrityError, Location, OperationalError
from zerodrift.oci.descriptor import (
    MEDIA_TYPE_INDEX,
    MEDIA_TYPE_LAYER,
    MEDIA_TYPE_LAYER_GZIP,
    MEDIA_TYPE_LAYER_ZSTD,
    Descriptor,
)
from zerodrift.oci.layout import Layout
from zerodrift.protect.layer import HOST_SPECIFIC_FILES
from zerodrift.protect.lock import LockedBase, LockedPackage
from zerodrift.spec.models import CopyItem, Image

__all__ = [
    "DebianBase",
    "Tree",
    "assemble_overlay",
    "build_debian_base",
    "debian_keep",
    "decompressed",
    "extract_oci_base",
    "extract_tar",
]

Owner = tuple[int, int]
_TMP_DIRS = frozenset({"/tmp", "/var/tmp"})  # noqa: S108 - paths inside the image
_CHUNK = 1 << 20


@dataclass
class Tree:
    """A root folder being assembled, with what the disk cannot say.

    Attributes:
        root: The folder.
        owners: ``(uid, gid)`` per absolute image path (default ``0:0``).
        specials: Image paths allowed to be device nodes or FIFOs.
    """

    root: Path
    owners: dict[str, Owner] = field(default_factory=dict)
    specials: set[str] = field(default_factory=set)


# --- Safe extraction --------------------------------------------------------------


def extract_tar(
    stream: IO[bytes],
    tree: Tree,
    *,
    origin: str,
    keep: Callable[[str], bool] = lambda _path: True,
    allow_specials: bool = True,
) -> None:
    """Extract a (gzip or plain) tar stream into ``tree``, applying whiteouts.

    Args:
        stream: The archive.
        tree: Where to extract; owners and special files are recorded in it.
        origin: The spec field the archive comes from, for error messages.
        keep: Return False for image paths to leave out.
        allow_specials: Whether device nodes and FIFOs are accepted.

    Raises:
        ConfigError: The archive has an absolute or ``..`` path, a link that
            leaves it, a write through a symbolic link, or a refused type.
        IntegrityError: The stream is not a readable tar archive.
    """
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as archive:
            for member in archive:
                inner = _member_path(member.name, origin)
                if inner == "/" or not keep(inner):
                    continue
                _extract_member(
                    archive,
                    member,
                    inner,
                    tree,
                    origin=origin,
                    allow_specials=allow_specials,
                )
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise IntegrityError(
            f"{origin}: archive is not a readable tar stream: {exc}",
            reference="archive-unreadable",
        ) from exc


def _member_path(name: str, origin: str) -> str:
    if name.startswith("/"):
        raise _unsafe(origin, name, "absolute path")
    parts = [p for p in PurePosixPath(name).parts if p not in (".", "")]
    if ".." in parts:
        raise _unsafe(origin, name, "path with '..'")
    return "/" + "/".join(parts)


def _unsafe(origin: str, name: str, what: str) -> ConfigError:
    return ConfigError(
        f"archive entry {name!r} is an {what}; refusing to extract it",
        hint="the base archive is malformed or hostile; use a trusted image",
        location=Location(field=origin),
        reference="archive-unsafe-path",
    )


def _extract_member(
    archive: tarfile.TarFile,
    member: tarfile.TarInfo,
    inner: str,
    tree: Tree,
    *,
    origin: str,
    allow_specials: bool,
) -> None:
    parent, _, name = inner.rpartition("/")
    target = _safe_parent(tree.root, parent, origin, member.name) / name
    if name == ".wh..wh..opq":
        _clear(target.parent, tree, parent)
        return
    if name.startswith(".wh."):
        _remove(target.parent / name.removeprefix(".wh."), tree, parent)
        return
    if not member.isdir():
        _remove(target, tree, parent)
    if member.isdir():
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            _remove(target, tree, parent)
        target.mkdir(exist_ok=True)
    elif member.isreg():
        _write_file(archive, member, target)
    elif member.issym():
        os.symlink(member.linkname, target)
    elif member.islnk():
        os.link(_link_source(tree.root, member, origin), target)
    elif member.ischr() or member.isblk() or member.isfifo():
        if not allow_specials:
            raise _unsafe(origin, member.name, "device node or FIFO")
        kind = stat.S_IFIFO if member.isfifo() else (
            stat.S_IFCHR if member.ischr() else stat.S_IFBLK
        )  # fmt: skip
        os.mknod(target, kind | 0o600, os.makedev(member.devmajor, member.devminor))
        tree.specials.add(inner)
    else:
        raise _unsafe(origin, member.name, f"unsupported entry type {member.type!r}")
    if not member.issym():
        os.chmod(target, member.mode & 0o7777)
        _set_xattrs(target, member)
    tree.owners[inner] = (member.uid, member.gid)


def _safe_parent(root: Path, parent: str, origin: str, name: str) -> Path:
    """The folder ``parent`` below ``root``; refuses symbolic links on the way."""
    folder = root
    for part in PurePosixPath(parent or "/").parts[1:]:
        folder = folder / part
        try:
            st = folder.lstat()
        except FileNotFoundError:
            folder.mkdir()
            continue
        if stat.S_ISLNK(st.st_mode):
            raise _unsafe(origin, name, "entry written through a symbolic link")
        if not stat.S_ISDIR(st.st_mode):
            raise _unsafe(origin, name, "entry below a non-folder")
    return folder


def _link_source(root: Path, member: tarfile.TarInfo, origin: str) -> Path:
    inner = _member_path(member.linkname, origin)
    parent, _, name = inner.rpartition("/")
    source = _safe_parent(root, parent, origin, member.name) / name
    if not source.is_file() or source.is_symlink():
        raise _unsafe(origin, member.name, "hard link to a path outside the archive")
    return source


def _write_file(
    archive: tarfile.TarFile, member: tarfile.TarInfo, target: Path
) -> None:
    data = archive.extractfile(member)
    if data is None:
        raise IntegrityError(f"archive entry {member.name!r} has no content")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        shutil.copyfileobj(data, handle, _CHUNK)
    os.utime(target, (member.mtime, member.mtime))


def _set_xattrs(target: Path, member: tarfile.TarInfo) -> None:
    from zerodrift.detect.manifest import SECURITY_XATTRS

    for key, value in member.pax_headers.items():
        name = key.removeprefix("SCHILY.xattr.")
        if key.startswith("SCHILY.xattr.") and name in SECURITY_XATTRS:
            try:
                os.setxattr(target, name, value.encode("utf-8", "surrogateescape"))
            except OSError as exc:
                raise OperationalError(
                    f"cannot set {name} on {target}: {exc.strerror}",
                    hint="build on a file system that supports extended attributes",
                    reference="xattr-unsupported",
                ) from exc


def _remove(target: Path, tree: Tree, parent: str) -> None:
    inner = f"{parent}/{target.name}"
    if target.is_symlink() or target.is_file() or _is_special(target):
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    else:
        return
    _forget(tree, inner)


def _clear(folder: Path, tree: Tree, inner: str) -> None:
    for child in list(folder.iterdir()):
        _remove(child, tree, inner)


def _forget(tree: Tree, inner: str) -> None:
    prefix = inner + "/"
    for key in [k for k in tree.owners if k == inner or k.startswith(prefix)]:
        del tree.owners[key]
    tree.specials = {
        k for k in tree.specials if not (k == inner or k.startswith(prefix))
    }


def _is_special(path: Path) -> bool:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return False
    return not (stat.S_ISDIR(mode) or stat.S_ISREG(mode) or stat.S_ISLNK(mode))


# --- Debian bases -------------------------------------------------------------------


@dataclass(frozen=True)
class DebianBase:
    """A Debian base tarball and what it resolved to.

    Attributes:
        tarball: The cached tarball made by mmdebstrap.
        locked: The lock entry describing it.
    """

    tarball: Path
    locked: LockedBase


def build_debian_base(
    image: Image,
    *,
    epoch: int,
    cache_dir: Path,
    locked: LockedBase | None,
    origin: str,
) -> DebianBase:
    """Return the base tarball for ``image``, from the cache or mmdebstrap.

    If ``locked`` matches the recipe and its tarball is cached (and still has
    the recorded SHA-256), nothing is downloaded. Otherwise mmdebstrap runs
    with ``SOURCE_DATE_EPOCH`` = ``locked.epoch`` (or ``epoch`` for a new
    entry) and the result describes what the mirror resolved; comparing it
    with the lock is the caller's job.

    Raises:
        OperationalError: mmdebstrap is missing or fails (mirror unreachable).
    """
    suite = image.base.removeprefix("debian:")
    if locked is not None and locked.request_matches(
        image.base, image.variant, image.packages
    ):
        cached = cache_dir / "base" / f"{locked.cache_key()}.tar"
        if cached.is_file() and _sha256_file(cached) == locked.rootfs_sha256:
            return DebianBase(cached, locked)
        epoch = locked.epoch
    with tempfile.TemporaryDirectory(prefix="mmdebstrap-", dir=cache_dir) as tmp:
        work = Path(tmp)
        debs = work / "debs"
        debs.mkdir()
        output = work / "base.tar"
        _run_mmdebstrap(
            image, suite, epoch=epoch, debs=debs, output=output, origin=origin
        )
        packages = _describe_debs(debs, cache_dir / "debs")
        entry = LockedBase(
            base=image.base,
            variant=image.variant,
            requested=tuple(sorted(image.packages)),
            epoch=epoch,
            packages=tuple(sorted(packages)),
            rootfs_sha256=_sha256_file(output),
        )
        final = cache_dir / "base" / f"{entry.cache_key()}.tar"
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(output, final)
    return DebianBase(final, entry)


def _run_mmdebstrap(
    image: Image, suite: str, *, epoch: int, debs: Path, output: Path, origin: str
) -> None:
    hook = f'cp "$1"/var/cache/apt/archives/*.deb {shlex.quote(str(debs))}/'
    command = ["mmdebstrap", "--quiet", f"--variant={image.variant}"]
    if image.packages:
        command.append("--include=" + ",".join(image.packages))
    command += [f"--extract-hook={hook}", suite, str(output)]
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch), "LC_ALL": "C.UTF-8"}
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, env=env, check=False, timeout=900
        )
    except FileNotFoundError as exc:
        raise OperationalError(
            "mmdebstrap is not installed",
            hint="apt-get install mmdebstrap (see scripts/bootstrap)",
            reference="tool-missing",
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise OperationalError(
            "mmdebstrap took longer than 15 minutes", reference="base-build-failed"
        ) from exc
    if result.returncode != 0:
        tail = " | ".join(result.stderr.strip().splitlines()[-3:])
        raise OperationalError(
            f"mmdebstrap failed for {image.base} ({image.variant}): {tail}",
            hint="check the package names and that the Debian mirror is reachable",
            location=Location(field=origin),
            reference="base-build-failed",
        )


def _describe_debs(debs: Path, keep_dir: Path) -> list[LockedPackage]:
    keep_dir.mkdir(parents=True, exist_ok=True)
    packages = []
    for deb in sorted(debs.glob("*.deb")):
        digest = _sha256_file(deb)
        show = "--showformat=${Package}\t${Version}\t${Architecture}"
        done = subprocess.run(
            ["dpkg-deb", "--show", show, str(deb)],
            capture_output=True,
            text=True,
            check=False,
        )
        fields = done.stdout.split("\t")
        if done.returncode != 0 or len(fields) != 3:
            raise OperationalError(
                f"cannot read the package fields of {deb.name}: {done.stderr.strip()}",
                hint="the downloaded .deb is damaged; retry the build",
                reference="deb-unreadable",
            )
        packages.append(LockedPackage(fields[0], fields[1], fields[2], digest))
        kept = keep_dir / f"{digest}.deb"
        if not kept.exists():
            os.replace(deb, kept)
    return packages


def debian_keep(inner: str) -> bool:
    """Whether a path from a Debian base tarball belongs in the image."""
    return not inner.startswith("/dev/") and inner not in HOST_SPECIFIC_FILES


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --- OCI bases --------------------------------------------------------------------


def extract_oci_base(
    base: str, project_root: Path, tree: Tree, work: Path, *, origin: str
) -> str:
    """Flatten a pinned ``oci-layout:`` or ``oci-archive:`` base into ``tree``.

    Returns:
        The base image's manifest digest.

    Raises:
        ConfigError: The path is missing or the archive is unsafe.
        IntegrityError: The digest is not in the layout, or a blob is corrupt.
    """
    kind, _, rest = base.partition(":")
    location, _, digest = rest.rpartition("@")
    source = project_root / location
    if not source.exists():
        raise ConfigError(
            f"base {location} does not exist",
            hint="paths in 'base' are relative to the project folder",
            location=Location(field=origin),
            reference="base-missing",
        )
    if kind == "oci-archive":
        unpacked = Tree(work / "archive")
        unpacked.root.mkdir()
        with source.open("rb") as handle:
            extract_tar(handle, unpacked, origin=origin, allow_specials=False)
        source = unpacked.root
    layout = Layout.open(source)
    for layer in _image_layers(layout, digest, origin):
        with layout.open_blob(layer.digest, size=layer.size) as reader:
            stream = decompressed(reader, layer.media_type, origin)  # type: ignore[arg-type]
            extract_tar(stream, tree, origin=origin)
            reader.verify_rest()
    return digest


def _image_layers(layout: Layout, digest: str, origin: str) -> list[Descriptor]:
    manifest = layout.read_json(digest)
    if manifest.get("mediaType") == MEDIA_TYPE_INDEX:
        candidates = [
            Descriptor.from_dict(m)
            for m in manifest.get("manifests", [])
            if (m.get("platform") or {}).get("architecture") in (None, "amd64")
        ]
        if not candidates:
            raise ConfigError(
                f"base index {digest} has no linux/amd64 image",
                location=Location(field=origin),
                reference="base-platform-missing",
            )
        manifest = layout.read_json(candidates[0])
    return [Descriptor.from_dict(item) for item in manifest.get("layers", [])]


_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def decompressed(reader: IO[bytes], media_type: str, origin: str) -> IO[bytes]:
    """Wrap a layer blob stream so that it reads as (gzip or plain) tar.

    Raises:
        ConfigError: The layer's media type is not one zerodrift reads.
    """
    # tarfile's "r|*" recognises gzip by itself; zstd needs a wrapper.
    if media_type in (MEDIA_TYPE_LAYER, MEDIA_TYPE_LAYER_GZIP, _DOCKER_LAYER_GZIP):
        return reader
    if media_type == MEDIA_TYPE_LAYER_ZSTD:
        import zstandard

        stream: IO[bytes] = zstandard.ZstdDecompressor().stream_reader(reader)
        return stream
    raise ConfigError(
        f"base layer type {media_type} is not supported",
        hint="use a base whose layers are tar, tar+gzip or tar+zstd",
        location=Location(field=origin),
        reference="base-layer-unsupported",
    )


# --- Copy items and writable paths --------------------------------------------------


def assemble_overlay(
    image: Image,
    name: str,
    project_root: Path,
    base: Tree,
    overlay: Tree,
    *,
    epoch: int,
) -> list[str]:
    """Put the recipe's ``copy`` items and ``writable`` folders into ``overlay``.

    Parent folders that the base already has keep the base's mode and owner;
    new ones are ``0755`` and owned by root. Copied files get the item's mode
    (default ``0644``, or ``0755`` when the source is executable) and owner;
    copied folders ``0755``. ``/tmp`` and ``/var/tmp`` are ``1777``; other
    writable folders belong to the image's user.

    Returns:
        The image paths of the copied files and folders (for the SBOM).

    Raises:
        ConfigError: A source escapes the repository (``..``, absolute path,
            symbolic link), is a device node, FIFO or socket, or has hard
            links outside the copied tree.
    """
    copied: list[str] = []
    for index, item in enumerate(image.copy_):
        origin = f"images.{name}.copy[{index}]"
        source = _checked_source(project_root, item, origin)
        copied.append(item.dest)
        _copy_item(source, _CopyJob(item, project_root, base, overlay, origin, epoch))
    user = _owner_of(image.user)
    for path in image.writable:
        mode, owner = (0o1777, (0, 0)) if path in _TMP_DIRS else (0o755, user)
        _ensure_parents(path, base, overlay)
        target = overlay.root / path.lstrip("/")
        target.mkdir(exist_ok=True)
        target.chmod(mode)
        overlay.owners[path] = owner
    return copied


def _owner_of(spec: str) -> Owner:
    uid, _, gid = spec.partition(":")
    return int(uid), int(gid or uid)


def _checked_source(project_root: Path, item: CopyItem, origin: str) -> Path:
    relative = PurePosixPath(item.src)
    if relative.is_absolute() or ".." in relative.parts:
        raise _copy_error(
            origin + ".src", item.src, "must be a path inside the project, without '..'"
        )
    source = project_root / relative
    if not source.exists() and not source.is_symlink():
        raise ConfigError(
            f"copy source {item.src!r} does not exist",
            hint="paths in 'copy' are relative to the folder holding fleet.yaml",
            location=Location(field=origin + ".src"),
            reference="copy-source-missing",
        )
    _check_inside(project_root, source, item.src, origin + ".src")
    return source


def _check_inside(project_root: Path, path: Path, shown: str, origin: str) -> None:
    real = Path(os.path.realpath(path))
    root = Path(os.path.realpath(project_root))
    if real != root and root not in real.parents:
        raise _copy_error(origin, shown, "resolves outside the project (symbolic link)")


def _copy_error(origin: str, path: str, problem: str) -> ConfigError:
    return ConfigError(
        f"copy source {path!r} {problem}",
        hint="copy only regular files, folders and relative links inside the project",
        location=Location(field=origin),
        reference="copy-source-refused",
    )


@dataclass(frozen=True)
class _CopyJob:
    item: CopyItem
    project_root: Path
    base: Tree
    overlay: Tree
    origin: str
    epoch: int


def _copy_item(source: Path, job: _CopyJob) -> None:
    item = job.item
    dest = item.dest.rstrip("/") or "/"
    if source.is_file() and not source.is_symlink() and item.dest.endswith("/"):
        dest = f"{dest}/{source.name}"
    _ensure_parents(dest, job.base, job.overlay)
    owner = _owner_of(item.owner)
    links: dict[tuple[int, int], Path] = {}
    sources = [source]
    if source.is_dir() and not source.is_symlink():
        sources += sorted(source.rglob("*"))
        _check_hard_links(sources, job.origin)
    for path in sources:
        relative = path.relative_to(source).as_posix()
        inner = dest if relative == "." else f"{dest}/{relative}"
        shown = (PurePosixPath(item.src) / relative).as_posix()
        target = job.overlay.root / inner.lstrip("/")
        _copy_one(path, target, job, shown, links)
        os.utime(target, (job.epoch, job.epoch), follow_symlinks=False)
        job.overlay.owners[inner] = owner


def _copy_one(
    path: Path,
    target: Path,
    job: _CopyJob,
    shown: str,
    links: dict[tuple[int, int], Path],
) -> None:
    field_path = job.origin + ".src"
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        link = os.readlink(path)
        if link.startswith("/"):
            raise _copy_error(field_path, shown, f"is an absolute link to {link}")
        _check_inside(job.project_root, path, shown, field_path)
        _replace(target)
        os.symlink(link, target)
    elif stat.S_ISDIR(st.st_mode):
        target.mkdir(exist_ok=True)
        target.chmod(0o755)
    elif stat.S_ISREG(st.st_mode):
        _replace(target)
        first = links.get((st.st_dev, st.st_ino))
        if first is not None:
            os.link(first, target)
            return
        shutil.copyfile(path, target)
        default = 0o755 if st.st_mode & 0o111 else 0o644
        target.chmod(int(job.item.mode, 8) if job.item.mode else default)
        if st.st_nlink > 1:
            links[(st.st_dev, st.st_ino)] = target
    else:
        raise _copy_error(
            field_path,
            shown,
            "is a device node, FIFO or socket; images may not take those "
            "from the repository",
        )


def _check_hard_links(paths: list[Path], origin: str) -> None:
    seen: dict[tuple[int, int], list[Path]] = {}
    for path in paths:
        st = path.lstat()
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            seen.setdefault((st.st_dev, st.st_ino), []).append(path)
    for group in seen.values():
        if len(group) < group[0].lstat().st_nlink:
            raise _copy_error(
                origin + ".src",
                str(group[0]),
                "is a hard link to a file outside the copied folder",
            )


def _replace(target: Path) -> None:
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)


def _ensure_parents(inner: str, base: Tree, overlay: Tree) -> None:
    parts = PurePosixPath(inner).parts[1:-1]
    current = ""
    for part in parts:
        current = f"{current}/{part}"
        target = overlay.root / current.lstrip("/")
        if target.is_dir():
            continue
        target.mkdir()
        in_base = base.root / current.lstrip("/")
        mode = 0o755
        if in_base.is_dir() and not in_base.is_symlink():
            mode = stat.S_IMODE(in_base.lstat().st_mode)
        target.chmod(mode)
        overlay.owners[current] = base.owners.get(current, (0, 0))
