"""Deterministic layer tars from a root folder, streamed into the OCI store.

The same folder content gives the same bytes, whatever the host, the user
running the build or the time of day:

- entries are sorted by their path bytes; parents come before children;
- owners come from the recipe (an explicit map, default ``0:0``), never from
  the disk; user and group names are left empty;
- modification times are clamped to ``SOURCE_DATE_EPOCH``;
- the tar is POSIX pax, and a pax header is written only where ustar cannot
  hold a field (long names, capabilities in ``SCHILY.xattr.*``);
- host-specific files (``/etc/hostname``, ``/etc/resolv.conf``) are never
  written; device nodes and FIFOs are refused unless the caller allows them
  (they come from a trusted base);
- hard links inside the tree are kept as tar hard links;
- gzip output has no file name and a zero time stamp, and is compressed in
  fixed 1 MiB blocks on every core (:class:`ParallelGzip`); zstd uses one
  thread and no content size; both are deterministic for a given library
  version, whatever the number of cores (see ADR 0011).

The diff ID (SHA-256 of the tar) and the blob digest (SHA-256 of the
compressed stream) are computed in the same pass that writes the blob, and
the golden-manifest entries are collected on the way as well.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import tarfile
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal, Protocol

from zlib_ng import zlib_ng

from zerodrift.detect.manifest import SECURITY_XATTRS, Entry, EntryType
from zerodrift.errors import ConfigError, Location
from zerodrift.oci.descriptor import (
    MEDIA_TYPE_LAYER,
    MEDIA_TYPE_LAYER_GZIP,
    MEDIA_TYPE_LAYER_ZSTD,
    Descriptor,
)
from zerodrift.oci.layout import Layout

__all__ = [
    "HOST_SPECIFIC_FILES",
    "Compression",
    "ParallelGzip",
    "Layer",
    "LayerOptions",
    "TarResult",
    "write_layer",
    "write_tar",
]

Compression = Literal["gzip", "zstd", "none"]
Owner = tuple[int, int]

HOST_SPECIFIC_FILES = frozenset({"/etc/hostname", "/etc/resolv.conf"})
_MEDIA_TYPES: dict[Compression, str] = {
    "gzip": MEDIA_TYPE_LAYER_GZIP,
    "zstd": MEDIA_TYPE_LAYER_ZSTD,
    "none": MEDIA_TYPE_LAYER,
}
_DEFAULT_LEVELS: dict[Compression, int] = {"gzip": 4, "zstd": 3, "none": 0}


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


@dataclass(frozen=True)
class LayerOptions:
    """How to turn a folder into a layer.

    Attributes:
        source_date_epoch: Newest modification time written (seconds).
        owners: Owner ``(uid, gid)`` per absolute path inside the image.
        default_owner: Owner of paths not in ``owners``.
        allowed_specials: Absolute paths that may be device nodes or FIFOs.
        compression: ``gzip`` (default), ``zstd`` or ``none``.
        level: Compression level (default: gzip 4, zstd 3; see ADR 0011).
        origin: How to name the folder in errors (a spec field path).
    """

    source_date_epoch: int
    owners: Mapping[str, Owner] = field(default_factory=dict)
    default_owner: Owner = (0, 0)
    allowed_specials: frozenset[str] = frozenset()
    compression: Compression = "gzip"
    level: int | None = None
    origin: str | None = None


@dataclass(frozen=True)
class TarResult:
    """What :func:`write_tar` produced.

    Attributes:
        diff_id: ``sha256:`` of the uncompressed tar (the OCI diff ID).
        size: Length of the uncompressed tar.
        entries: Golden-manifest entries, one per tar member, in tar order.
    """

    diff_id: str
    size: int
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class Layer:
    """A layer stored in the OCI layout.

    Attributes:
        descriptor: The compressed blob's descriptor.
        diff_id: ``sha256:`` of the uncompressed tar.
        size: Length of the uncompressed tar.
        entries: Golden-manifest entries of the layer, in tar order.
    """

    descriptor: Descriptor
    diff_id: str
    size: int
    entries: tuple[Entry, ...]


def write_layer(root: Path, layout: Layout, options: LayerOptions) -> Layer:
    """Write ``root`` as a compressed layer blob into ``layout``.

    Raises:
        ConfigError: The folder holds something an image must not (a device
            node, a socket, a file name that is not UTF-8).
        OperationalError: The store cannot be written.
    """
    media_type = _MEDIA_TYPES[options.compression]
    with layout.blob_writer(media_type) as blob:
        result = write_tar(root, blob, options)
    return Layer(blob.descriptor, result.diff_id, result.size, result.entries)


def write_tar(root: Path, sink: _Sink, options: LayerOptions) -> TarResult:
    """Write ``root`` as a deterministic (compressed) tar stream to ``sink``.

    Raises:
        ConfigError: The folder holds a device node, FIFO or socket that is
            not allowed, or a file name that is not UTF-8.
    """
    level = options.level if options.level is not None else _DEFAULT_LEVELS[
        options.compression
    ]  # fmt: skip
    compressor = _compressor(options.compression, level)
    stream = _CompressingStream(sink, compressor)
    writer = _TarWriter(root, options)
    try:
        with tarfile.open(  # type: ignore[call-overload]
            fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8"
        ) as archive:
            for relative in _sorted_tree(root, options.origin):
                writer.add(archive, relative)
        stream.finish()
    finally:
        if isinstance(compressor, ParallelGzip):
            compressor.close()
    return TarResult(
        "sha256:" + stream.hash.hexdigest(), stream.size, tuple(writer.entries)
    )


# --- Compression -----------------------------------------------------------------


class _Compressor(Protocol):
    def compress(self, data: bytes, /) -> bytes: ...

    def flush(self) -> bytes: ...


class _Identity:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def _compressor(kind: Compression, level: int) -> _Compressor:
    if kind == "gzip":
        return ParallelGzip(level)
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(
            level=level, write_content_size=False, write_checksum=True, threads=0
        ).compressobj()
    return _Identity()


class ParallelGzip:
    """Deterministic gzip on every core, in the manner of pigz.

    The input is cut into fixed blocks of :data:`BLOCK` bytes. Each block is
    deflated on its own (in a thread: zlib releases the interpreter lock),
    primed with the previous 32 KiB as dictionary, and ended with a sync
    flush; the last block finishes the stream. The raw deflate pieces,
    concatenated, form one valid deflate stream inside a gzip header (no
    name, time stamp 0) and trailer (CRC-32, length).

    Deflate is zlib-ng's (2 to 4 times faster than zlib at the same ratio).
    The output depends only on the input, the level, the block size and the
    zlib-ng version (pinned in requirements/), never on the number of threads
    (ADR 0011).
    """

    BLOCK = 1 << 20
    _WINDOW = 1 << 15
    # Magic, deflate, no flags, mtime 0, no extra flags, OS "unknown".
    _HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"

    def __init__(self, level: int, workers: int | None = None) -> None:
        self._level = level
        self._workers = max(1, workers or os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="gzip")
        self._pending: deque[Future[bytes]] = deque()
        self._buffer = bytearray()
        self._previous = b""
        self._crc = 0
        self._size = 0
        self._started = False

    def compress(self, data: bytes) -> bytes:
        """Take ``data``; return whatever compressed output is ready, in order."""
        self._crc = zlib_ng.crc32(data, self._crc)
        self._size += len(data)
        self._buffer += data
        while len(self._buffer) >= self.BLOCK:
            self._submit(bytes(self._buffer[: self.BLOCK]), last=False)
            del self._buffer[: self.BLOCK]
        return self._collect(wait=len(self._pending) > 2 * self._workers)

    def flush(self) -> bytes:
        """Finish the stream and return the rest of the output."""
        self._submit(bytes(self._buffer), last=True)
        self._buffer.clear()
        out = self._collect(wait=True, everything=True)
        self._pool.shutdown()
        trailer = struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF)
        return out + trailer

    def close(self) -> None:
        """Stop the worker threads (after an error)."""
        self._pool.shutdown(cancel_futures=True)

    def _submit(self, block: bytes, *, last: bool) -> None:
        dictionary = self._previous[-self._WINDOW :]
        self._pending.append(
            self._pool.submit(_deflate_block, block, dictionary, self._level, last)
        )
        self._previous = block

    def _collect(self, *, wait: bool, everything: bool = False) -> bytes:
        out = bytearray()
        if not self._started:
            out += self._HEADER
            self._started = True
        while self._pending and (wait or self._pending[0].done()):
            out += self._pending.popleft().result()
            wait = everything
        return bytes(out)


def _deflate_block(block: bytes, dictionary: bytes, level: int, last: bool) -> bytes:
    if dictionary:
        compressor = zlib_ng.compressobj(level, zlib_ng.DEFLATED, -15, zdict=dictionary)
    else:
        compressor = zlib_ng.compressobj(level, zlib_ng.DEFLATED, -15)
    return compressor.compress(block) + compressor.flush(
        zlib_ng.Z_FINISH if last else zlib_ng.Z_SYNC_FLUSH
    )


class _CompressingStream:
    """Hashes the uncompressed tar and hands compressed bytes to the sink."""

    def __init__(self, sink: _Sink, compressor: _Compressor) -> None:
        self._sink = sink
        self._compressor = compressor
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        out = self._compressor.compress(data)
        if out:
            self._sink.write(out)
        return len(data)

    def finish(self) -> None:
        tail = self._compressor.flush()
        if tail:
            self._sink.write(tail)


class _HashingReader:
    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._handle.read(n)
        self.hash.update(data)
        return data


# --- Walking and writing -----------------------------------------------------------


def _sorted_tree(root: Path, origin: str | None) -> list[str]:
    """Every path below ``root``, relative, sorted by its bytes."""
    found: list[bytes] = []
    stack = [b""]
    base = os.fsencode(root)
    while stack:
        prefix = stack.pop()
        with os.scandir(os.path.join(base, prefix) if prefix else base) as entries:
            for entry in entries:
                name = os.path.join(prefix, entry.name) if prefix else entry.name
                found.append(name)
                if entry.is_dir(follow_symlinks=False):
                    stack.append(name)
    found.sort()
    return [_decode(name, origin) for name in found]


def _decode(name: bytes, origin: str | None) -> str:
    try:
        return name.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"file name {name!r} is not UTF-8",
            hint="rename the file; image paths must be UTF-8",
            location=Location(field=origin),
            reference="path-not-utf8",
        ) from exc


class _TarWriter:
    def __init__(self, root: Path, options: LayerOptions) -> None:
        self._root = root
        self._options = options
        self._inodes: dict[tuple[int, int], Entry] = {}
        self.entries: list[Entry] = []

    def add(self, archive: tarfile.TarFile, relative: str) -> None:
        inner = "/" + relative
        if inner in HOST_SPECIFIC_FILES:
            return
        path = self._root / relative
        st = path.lstat()
        uid, gid = self._options.owners.get(inner, self._options.default_owner)
        info = tarfile.TarInfo(relative)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = uid, gid
        info.uname = info.gname = ""
        info.mtime = min(int(st.st_mtime), self._options.source_date_epoch)
        xattrs = _security_xattrs(path)
        info.pax_headers = {
            "SCHILY.xattr." + key: value.decode("utf-8", "surrogateescape")
            for key, value in xattrs.items()
        }
        entry = self._describe(info, path, st, inner, xattrs)
        if entry.type == "file":
            with path.open("rb") as handle:
                reader = _HashingReader(handle)
                archive.addfile(info, reader)
            entry = _with_hash(entry, reader.hash.hexdigest())
            if st.st_nlink > 1:
                self._inodes[(st.st_dev, st.st_ino)] = entry
        else:
            archive.addfile(info)
        self.entries.append(entry)

    def _describe(
        self,
        info: tarfile.TarInfo,
        path: Path,
        st: os.stat_result,
        inner: str,
        xattrs: Mapping[str, bytes],
    ) -> Entry:
        kind, target, rdev = self._classify(info, path, st, inner)
        size, sha256 = 0, None
        if kind == "file":
            info.size = size = st.st_size
        elif kind == "hardlink":
            first = self._inodes[(st.st_dev, st.st_ino)]
            size, sha256 = first.size, first.sha256
        return Entry(
            inner, kind, info.mode, info.uid, info.gid, size, sha256, target, rdev,
            dict(xattrs),
        )  # fmt: skip

    def _classify(
        self, info: tarfile.TarInfo, path: Path, st: os.stat_result, inner: str
    ) -> tuple[EntryType, str | None, tuple[int, int] | None]:
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
            return "dir", None, None
        if stat.S_ISLNK(mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
            return "symlink", info.linkname, None
        if stat.S_ISREG(mode):
            first = self._inodes.get((st.st_dev, st.st_ino))
            if first is not None:
                info.type, info.linkname = tarfile.LNKTYPE, first.path.lstrip("/")
                return "hardlink", first.path, None
            info.type = tarfile.REGTYPE
            return "file", None, None
        return self._special(info, st, inner)

    def _special(
        self, info: tarfile.TarInfo, st: os.stat_result, inner: str
    ) -> tuple[EntryType, str | None, tuple[int, int] | None]:
        mode = st.st_mode
        if inner not in self._options.allowed_specials or stat.S_ISSOCK(mode):
            raise ConfigError(
                f"{inner} is a {_kind_name(mode)}; images may not contain one",
                hint="remove it; only device nodes from the base image are kept",
                location=Location(field=self._options.origin),
                reference="special-file-refused",
            )
        if stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
            return "fifo", None, None
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        kind: EntryType = "char" if stat.S_ISCHR(mode) else "block"
        return kind, None, (info.devmajor, info.devminor)


def _with_hash(entry: Entry, sha256: str) -> Entry:
    return Entry(
        entry.path, entry.type, entry.mode, entry.uid, entry.gid, entry.size,
        sha256, entry.target, entry.rdev, entry.xattrs,
    )  # fmt: skip


def _kind_name(mode: int) -> str:
    checks: list[tuple[Callable[[int], bool], str]] = [
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
    ]
    return next((name for test, name in checks if test(mode)), "special file")


def _security_xattrs(path: Path) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    return {
        name: os.getxattr(path, name, follow_symlinks=False)
        for name in sorted(names)
        if name in SECURITY_XATTRS
    }
