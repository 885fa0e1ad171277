"""Deterministic layers: same content, same bytes, whatever the host did."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest
import zstandard

from zerodrift.detect.manifest import entries_from_tar
from zerodrift.errors import ConfigError
from zerodrift.oci import Layout
from zerodrift.protect.layer import (
    Compression,
    LayerOptions,
    ParallelGzip,
    write_layer,
    write_tar,
)

EPOCH = 1_700_000_000
# A file capability (cap_net_bind_service+ep), as setcap writes it.
CAP_NET_BIND = bytes.fromhex("0100000200040000000000000000000000000000")


class _Buffer:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)


def _tree(root: Path, *, mtime: int, mode_order: bool = False) -> Path:
    names = ["b.txt", "a/z.txt", "a/y.txt", "a-b", "bin/tool"]
    if mode_order:
        names.reverse()
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"content of {name}\n".encode())
    (root / "bin" / "tool").chmod(0o755)
    (root / "etc").mkdir()
    (root / "etc" / "hostname").write_text("build-host-123\n")
    (root / "etc" / "resolv.conf").write_text("nameserver 10.0.0.1\n")
    (root / "link").symlink_to("b.txt")
    os.link(root / "b.txt", root / "hard")
    for path in [root, *root.rglob("*")]:
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return root


def _tar_bytes(root: Path, **options: object) -> bytes:
    sink = _Buffer()
    write_tar(root, sink, LayerOptions(source_date_epoch=EPOCH, **options))  # type: ignore[arg-type]
    return bytes(sink.data)


def test_same_content_in_two_folders_gives_identical_bytes(tmp_path: Path) -> None:
    one = _tree(tmp_path / "one", mtime=EPOCH + 5000)
    two = _tree(tmp_path / "two", mtime=EPOCH + 99999, mode_order=True)
    os.chown(two / "b.txt", 1234, 5678)

    for compression in ("gzip", "zstd", "none"):
        assert _tar_bytes(one, compression=compression) == _tar_bytes(
            two, compression=compression
        )


def test_tar_is_sorted_normalised_and_free_of_host_files(tmp_path: Path) -> None:
    root = _tree(tmp_path / "root", mtime=EPOCH + 10)
    os.utime(root / "b.txt", (EPOCH - 10, EPOCH - 10))

    data = gzip.decompress(_tar_bytes(root, owners={"/bin/tool": (10, 20)}))
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = archive.getmembers()

    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: n.encode())
    assert "etc/hostname" not in names
    assert "etc/resolv.conf" not in names
    by_name = {m.name: m for m in members}
    assert (by_name["bin/tool"].uid, by_name["bin/tool"].gid) == (10, 20)
    assert (by_name["a/y.txt"].uid, by_name["a/y.txt"].uname) == (0, "")
    assert by_name["a/y.txt"].mtime == EPOCH
    assert by_name["b.txt"].mtime == EPOCH - 10
    assert by_name["hard"].islnk()
    assert by_name["hard"].linkname == "b.txt"
    assert by_name["link"].issym()
    assert all(not m.pax_headers for m in members)


def test_gzip_header_has_no_name_and_no_time(tmp_path: Path) -> None:
    root = _tree(tmp_path / "root", mtime=EPOCH)

    data = _tar_bytes(root)

    assert data[:3] == b"\x1f\x8b\x08"
    assert data[3] == 0  # no FNAME, no FCOMMENT
    assert data[4:8] == b"\x00\x00\x00\x00"  # MTIME


def test_layer_blob_digests_and_entries_match_the_stored_tar(tmp_path: Path) -> None:
    root = _tree(tmp_path / "root", mtime=EPOCH)
    layout = Layout.create(tmp_path / "store")

    compressions: list[Compression] = ["gzip", "zstd"]
    for compression in compressions:
        options = LayerOptions(EPOCH, compression=compression)
        layer = write_layer(root, layout, options)
        blob = layout.read_blob(layer.descriptor)
        tar = (
            gzip.decompress(blob)
            if compression == "gzip"
            else zstandard.ZstdDecompressor().decompressobj().decompress(blob)
        )
        assert layer.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
        assert layer.size == len(tar)
        assert list(layer.entries) == entries_from_tar(io.BytesIO(tar))
        assert layer.descriptor.media_type.endswith(compression)


def test_entries_describe_files_links_and_hard_links(tmp_path: Path) -> None:
    root = _tree(tmp_path / "root", mtime=EPOCH)
    layout = Layout.create(tmp_path / "store")

    entries = {
        e.path: e for e in write_layer(root, layout, LayerOptions(EPOCH)).entries
    }

    assert entries["/b.txt"].type == "file"
    assert entries["/b.txt"].size == len(b"content of b.txt\n")
    assert entries["/hard"].type == "hardlink"
    assert entries["/hard"].target == "/b.txt"
    assert entries["/hard"].sha256 == entries["/b.txt"].sha256
    assert entries["/link"].type == "symlink"
    assert entries["/link"].target == "b.txt"
    assert entries["/bin/tool"].mode == 0o755
    assert entries["/a"].type == "dir"


def test_file_capability_is_kept_in_a_pax_header(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    tool = root / "ping"
    tool.write_bytes(b"\x7fELF")
    try:
        os.setxattr(tool, "security.capability", CAP_NET_BIND)
    except OSError:
        pytest.skip("this file system cannot store security.capability")

    data = _tar_bytes(root, compression="none")
    entries = entries_from_tar(io.BytesIO(data))

    assert entries[0].xattrs == {"security.capability": CAP_NET_BIND}
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        headers = archive.getmember("ping").pax_headers
    assert "SCHILY.xattr.security.capability" in headers


def test_fifo_is_refused_unless_allowed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    os.mkfifo(root / "pipe")

    with pytest.raises(ConfigError) as info:
        _tar_bytes(root, origin="images.web.copy[0]")
    assert info.value.reference == "special-file-refused"
    assert "/pipe" in info.value.message
    assert info.value.location is not None
    assert info.value.location.field == "images.web.copy[0]"

    data = _tar_bytes(root, compression="none", allowed_specials=frozenset({"/pipe"}))
    assert entries_from_tar(io.BytesIO(data))[0].type == "fifo"


def test_device_node_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    try:
        os.mknod(root / "null", 0o666 | 0o020000, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating device nodes needs root")

    with pytest.raises(ConfigError, match="character device"):
        _tar_bytes(root)


def test_parallel_gzip_is_the_same_whatever_the_thread_count() -> None:
    data = b"".join(
        hashlib.sha256(str(i).encode()).digest() * (i % 7 + 1) for i in range(90_000)
    )
    outputs = []
    for workers in (1, 2, 3):
        compressor = ParallelGzip(6, workers)
        chunks = [compressor.compress(data[i : i + 10_000])
                  for i in range(0, len(data), 10_000)]  # fmt: skip
        outputs.append(b"".join(chunks) + compressor.flush())

    assert len(data) > 3 * ParallelGzip.BLOCK
    assert outputs[0] == outputs[1] == outputs[2]
    assert gzip.decompress(outputs[0]) == data
