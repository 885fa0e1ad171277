"""One path's recorded state, and its one-line encoding in a baseline.

A baseline line is tab-separated, in the order of :data:`FIELDS`; empty
fields mean "not recorded". Paths, link targets and errors escape backslash,
tab and newline, so any byte string (names need not be UTF-8) fits. The
first ten fields are the :func:`fingerprint`: what ``lstat`` tells.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass

__all__ = [
    "FIELDS",
    "Entry",
    "decode_entry",
    "encode_entry",
    "escape",
    "fingerprint",
    "line_path",
    "stat_fingerprint",
    "stat_tail",
    "unescape",
]

FIELDS = (
    "path",
    "type",
    "mode",
    "uid",
    "gid",
    "size",
    "inode",
    "nlink",
    "mtime",
    "ctime",
    "hash",
    "target",
    "xattrs",
    "rdev",
    "error",
)

_TYPES = {
    stat.S_IFREG: "file",
    stat.S_IFDIR: "dir",
    stat.S_IFLNK: "symlink",
    stat.S_IFCHR: "char",
    stat.S_IFBLK: "block",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
}


@dataclass(slots=True)
class Entry:
    """What is known about one path. ``None`` means "not recorded".

    Attributes:
        path: Absolute path as bytes (names need not be UTF-8).
        type: file, dir, symlink, char, block, fifo or socket.
        mode: Permission bits including setuid, setgid and sticky.
        uid: Owner.
        gid: Group.
        size: Size in bytes.
        inode: Inode number.
        nlink: Hard link count.
        mtime: Modification time in nanoseconds.
        ctime: Status change time in nanoseconds.
        hash: Hex digest of the content (regular files).
        target: Symbolic link target.
        xattrs: Extended attributes, name to base64 value.
        rdev: Device numbers (major, minor) of device files.
        error: Why something could not be read, when it could not.
    """

    path: bytes
    type: str
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: int | None = None
    inode: int | None = None
    nlink: int | None = None
    mtime: int | None = None
    ctime: int | None = None
    hash: str | None = None
    target: str | None = None
    xattrs: dict[str, str] | None = None
    rdev: tuple[int, int] | None = None
    error: str | None = None

    @classmethod
    def from_stat(cls, path: bytes, st: os.stat_result) -> Entry:
        """Build from an ``lstat`` result (no content, no xattrs yet)."""
        kind = _TYPES.get(stat.S_IFMT(st.st_mode), "unknown")
        device = kind in ("char", "block")
        return cls(
            path,
            kind,
            stat.S_IMODE(st.st_mode),
            st.st_uid,
            st.st_gid,
            st.st_size if kind != "dir" else None,
            st.st_ino,
            st.st_nlink,
            st.st_mtime_ns,
            st.st_ctime_ns,
            rdev=(os.major(st.st_rdev), os.minor(st.st_rdev)) if device else None,
        )

    @property
    def display(self) -> str:
        """The path for people: undecodable bytes shown as escapes."""
        return self.path.decode("utf-8", "backslashreplace")


def escape(text: bytes) -> bytes:
    """Escape backslash, tab and newline so a value fits in one TSV field."""
    if b"\\" in text or b"\t" in text or b"\n" in text:
        text = text.replace(b"\\", b"\\\\").replace(b"\t", b"\\t")
        return text.replace(b"\n", b"\\n")
    return text


def unescape(text: bytes) -> bytes:
    """Undo :func:`escape`."""
    if b"\\" not in text:
        return text
    return _ESCAPED.sub(lambda m: _UNESCAPE[m.group(1)], text)


_ESCAPED = re.compile(rb"\\(.)")
_UNESCAPE = {b"\\": b"\\", b"t": b"\t", b"n": b"\n"}


def _num(value: int | None) -> bytes:
    return b"" if value is None else b"%d" % value


def fingerprint(entry: Entry) -> bytes:
    """The first ten fields of an entry's line: path and ``lstat`` data.

    A fast check compares these bytes with the baseline line's start: equal
    means the path's identity (inode, size, times, mode, owner) is unchanged.
    """
    return b"%b\t%b\t%b\t%b\t%b\t%b\t%b\t%b\t%b\t%b\t" % (
        escape(entry.path),
        entry.type.encode(),
        _num(entry.mode),
        _num(entry.uid),
        _num(entry.gid),
        _num(entry.size),
        _num(entry.inode),
        _num(entry.nlink),
        _num(entry.mtime),
        _num(entry.ctime),
    )


_TYPE_BYTES = {kind: name.encode() for kind, name in _TYPES.items()}


def stat_fingerprint(path: bytes, st: os.stat_result) -> bytes:
    """:func:`fingerprint` of ``Entry.from_stat(path, st)``, computed directly.

    The fast check calls this (or :func:`stat_tail`) once per path, so it
    skips building an entry.
    """
    if b"\\" in path or b"\t" in path or b"\n" in path:
        path = escape(path)
    return b"%b\t%b" % (path, stat_tail(st))


def stat_tail(st: os.stat_result) -> bytes:
    """:func:`stat_fingerprint` without the path and its tab."""
    kind = _TYPE_BYTES.get(stat.S_IFMT(st.st_mode), b"unknown")
    return b"%b\t%d\t%d\t%d\t%b\t%d\t%d\t%d\t%d\t" % (
        kind,
        stat.S_IMODE(st.st_mode),
        st.st_uid,
        st.st_gid,
        b"" if kind == b"dir" else b"%d" % st.st_size,
        st.st_ino,
        st.st_nlink,
        st.st_mtime_ns,
        st.st_ctime_ns,
    )


def encode_entry(entry: Entry) -> bytes:
    """One baseline line for ``entry`` (without the newline)."""
    if entry.xattrs is None:
        xattrs = b""
    else:
        xattrs = json.dumps(entry.xattrs).encode() if entry.xattrs else b"{}"
    rdev = b"%d:%d" % entry.rdev if entry.rdev else b""
    return fingerprint(entry) + b"\t".join(
        (
            (entry.hash or "").encode(),
            b"" if entry.target is None else escape(os.fsencode(entry.target)),
            xattrs,
            rdev,
            b"" if entry.error is None else escape(entry.error.encode()),
        )
    )


def line_path(line: bytes) -> bytes:
    """The path of a baseline line, without decoding the rest."""
    return unescape(line[: line.index(b"\t")])


def decode_entry(line: bytes) -> Entry:
    """Parse one baseline line (already covered by a verified digest)."""
    f = line.rstrip(b"\n").split(b"\t")
    rdev = f[13].split(b":") if f[13] else None
    n = [int(v) if v else None for v in f[2:10]]
    return Entry(
        unescape(f[0]),
        f[1].decode(),
        n[0],
        n[1],
        n[2],
        n[3],
        n[4],
        n[5],
        n[6],
        n[7],
        f[10].decode() or None,
        os.fsdecode(unescape(f[11])) if f[11] else None,
        json.loads(f[12]) if f[12] else None,
        (int(rdev[0]), int(rdev[1])) if rdev else None,
        unescape(f[14]).decode() if f[14] else None,
    )
