"""Golden manifests: the exact expected file tree of an image, with a Merkle root.

A golden manifest lists every path an image contains, with what an attacker
would change: type, permission bits, owner, size, SHA-256 of regular files,
link targets, device numbers and security-relevant extended attributes. It is
derived from the image's final layer tar(s), so it describes exactly what the
image holds, and it is stored next to the image as an OCI 1.1 artifact whose
``subject`` is the image manifest.

Format (media type :data:`MEDIA_TYPE`, a stable interface read by the node
drift checks and by host file integrity monitoring)::

    {"schema": "zerodrift.golden-manifest/v1",
     "image": "web",
     "entries": [ENTRY, ...],            # sorted by the UTF-8 bytes of "path"
     "merkle_root": "<64 hex>"}

Each ENTRY always has ``path`` (absolute), ``type`` (``file``, ``dir``,
``symlink``, ``hardlink``, ``char``, ``block`` or ``fifo``), ``mode`` (the
permission bits including setuid, setgid and sticky, as an integer),
``uid``, ``gid`` and ``size`` (bytes of content for files and hard links,
0 otherwise). Present only when they apply: ``sha256`` (files and hard
links, lowercase hex of the content), ``target`` (the link target; for a
hard link, the absolute path of the file it shares an inode with), ``rdev``
(``[major, minor]`` for devices) and ``xattrs`` (name to base64 value, only
for the names in :data:`SECURITY_XATTRS`). The root folder ``/`` is not an
entry.

The Merkle root follows RFC 6962 (section 2.1): a leaf hash is
``sha256(0x00 || canonical JSON of the entry)``, an inner node is
``sha256(0x01 || left || right)``, the tree splits at the largest power of
two below the number of leaves, and an empty list hashes to ``sha256("")``.

The pure half (:class:`Entry`, :class:`GoldenManifest`, :func:`merkle_root`,
:func:`diff`) does no IO; :func:`entries_from_tar` reads a layer stream.

Example:
    >>> entry = Entry("/etc", "dir", 0o755, 0, 0, 0)
    >>> manifest = GoldenManifest.build("web", [entry])
    >>> diff(manifest, [entry]).is_empty
    True
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import IO, Any, Literal

from zerodrift._internal.canonical import canonical_json
from zerodrift.errors import IntegrityError

__all__ = [
    "ARTIFACT_TYPE",
    "MEDIA_TYPE",
    "SCHEMA",
    "SECURITY_XATTRS",
    "Change",
    "Diff",
    "Entry",
    "EntryType",
    "GoldenManifest",
    "diff",
    "entries_from_tar",
    "merge_layers",
    "merkle_root",
]

MEDIA_TYPE = "application/vnd.zerodrift.golden-manifest.v1+json"
# The artifact type of the OCI referrer that carries the manifest.
ARTIFACT_TYPE = MEDIA_TYPE
SCHEMA = "zerodrift.golden-manifest/v1"

# Extended attributes that change what a file may do; others (SELinux labels
# applied by the host, user attributes) are host-specific and left out.
SECURITY_XATTRS = frozenset({"security.capability", "security.ima", "security.evm"})

EntryType = Literal["file", "dir", "symlink", "hardlink", "char", "block", "fifo"]
_TAR_TYPES: dict[bytes, EntryType] = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.CONTTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
    tarfile.FIFOTYPE: "fifo",
}
_XATTR_PREFIX = "SCHILY.xattr."
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"


@dataclass(frozen=True)
class Entry:
    """One path of an image, as recorded in a golden manifest.

    Attributes:
        path: Absolute path inside the image.
        type: What kind of file it is.
        mode: Permission bits including setuid, setgid and sticky.
        uid: Owner user id.
        gid: Owner group id.
        size: Content length for files and hard links, else 0.
        sha256: Hex SHA-256 of the content (files and hard links).
        target: Symlink target, or the path a hard link shares content with.
        rdev: ``(major, minor)`` for character and block devices.
        xattrs: Security-relevant extended attributes, name to raw value.
    """

    path: str
    type: EntryType
    mode: int
    uid: int
    gid: int
    size: int = 0
    sha256: str | None = None
    target: str | None = None
    rdev: tuple[int, int] | None = None
    xattrs: Mapping[str, bytes] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash(canonical_json(self.to_dict()))

    def to_dict(self) -> dict[str, Any]:
        """Render the entry in the manifest's JSON form (absent fields left out)."""
        data: dict[str, Any] = {
            "path": self.path,
            "type": self.type,
            "mode": self.mode,
            "uid": self.uid,
            "gid": self.gid,
            "size": self.size,
        }
        if self.sha256 is not None:
            data["sha256"] = self.sha256
        if self.target is not None:
            data["target"] = self.target
        if self.rdev is not None:
            data["rdev"] = list(self.rdev)
        if self.xattrs:
            data["xattrs"] = {
                k: base64.b64encode(v).decode("ascii")
                for k, v in sorted(self.xattrs.items())
            }
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Entry:
        """Parse an entry from the manifest's JSON form.

        Raises:
            IntegrityError: A field is missing or has the wrong type.
        """
        try:
            rdev = data.get("rdev")
            entry = cls(
                path=_str(data["path"]),
                type=data["type"],
                mode=_int(data["mode"]),
                uid=_int(data["uid"]),
                gid=_int(data["gid"]),
                size=_int(data["size"]),
                sha256=data.get("sha256"),
                target=data.get("target"),
                rdev=None if rdev is None else (_int(rdev[0]), _int(rdev[1])),
                xattrs={
                    _str(k): base64.b64decode(_str(v), validate=True)
                    for k, v in (data.get("xattrs") or {}).items()
                },
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise _malformed(f"bad entry {data.get('path')!r}: {exc}") from exc
        if entry.type not in set(_TAR_TYPES.values()):
            raise _malformed(f"bad entry {entry.path!r}: unknown type {entry.type!r}")
        return entry

    def leaf_hash(self) -> bytes:
        """The RFC 6962 leaf hash of this entry."""
        return hashlib.sha256(b"\x00" + canonical_json(self.to_dict())).digest()


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("expected an integer")
    return value


def _malformed(message: str) -> IntegrityError:
    return IntegrityError(
        f"golden manifest is malformed: {message}",
        hint="the manifest was damaged or edited; rebuild the image",
        reference="golden-manifest-malformed",
    )


def _sort_key(entry: Entry) -> bytes:
    return entry.path.encode("utf-8", "surrogateescape")


def merkle_root(entries: Sequence[Entry]) -> str:
    """Return the RFC 6962 Merkle tree hash (hex) over ``entries`` in order."""
    level = [entry.leaf_hash() for entry in entries]
    if not level:
        return hashlib.sha256(b"").hexdigest()
    return _subtree(level).hex()


def _subtree(leaves: Sequence[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    left = _subtree(leaves[:split])
    right = _subtree(leaves[split:])
    return hashlib.sha256(b"\x01" + left + right).digest()


@dataclass(frozen=True)
class GoldenManifest:
    """The golden manifest of one image. Build with :meth:`build`.

    Attributes:
        image: The image name from the fleet spec.
        entries: Every path, sorted by path bytes.
        merkle_root: RFC 6962 root over ``entries`` (hex).
    """

    image: str
    entries: tuple[Entry, ...]
    merkle_root: str

    @classmethod
    def build(cls, image: str, entries: Iterable[Entry]) -> GoldenManifest:
        """Sort ``entries`` and compute the Merkle root.

        Raises:
            ValueError: Two entries have the same path.
        """
        ordered = tuple(sorted(entries, key=_sort_key))
        for before, after in itertools.pairwise(ordered):
            if before.path == after.path:
                raise ValueError(f"duplicate path {before.path!r}")
        return cls(image, ordered, merkle_root(ordered))

    def to_json(self) -> bytes:
        """Serialise as canonical JSON (RFC 8785), the stored form."""
        return canonical_json(
            {
                "schema": SCHEMA,
                "image": self.image,
                "entries": [entry.to_dict() for entry in self.entries],
                "merkle_root": self.merkle_root,
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> GoldenManifest:
        """Parse a stored manifest and check its order and Merkle root.

        Raises:
            IntegrityError: The document is malformed, out of order, or its
                Merkle root does not match its entries.
        """
        try:
            document = json.loads(data)
        except ValueError as exc:
            raise _malformed("not JSON") from exc
        if not isinstance(document, dict) or document.get("schema") != SCHEMA:
            raise _malformed(f"schema is not {SCHEMA}")
        raw_entries = document.get("entries")
        if not isinstance(raw_entries, list):
            raise _malformed("entries is not a list")
        entries = tuple(Entry.from_dict(item) for item in raw_entries)
        if list(entries) != sorted(entries, key=_sort_key):
            raise _malformed("entries are not sorted by path")
        root = merkle_root(entries)
        if root != document.get("merkle_root"):
            raise IntegrityError(
                "golden manifest's Merkle root does not match its entries",
                hint="the manifest was altered after it was built",
                reference="golden-manifest-root-mismatch",
            )
        return cls(_str(document.get("image")), entries, root)

    def by_path(self) -> dict[str, Entry]:
        """Entries keyed by path."""
        return {entry.path: entry for entry in self.entries}


# --- Comparison (pure) --------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """A path present on both sides whose attributes differ.

    Attributes:
        path: The path.
        attributes: Names of the attributes that differ, sorted.
        expected: The golden entry.
        actual: The observed entry.
    """

    path: str
    attributes: tuple[str, ...]
    expected: Entry
    actual: Entry


@dataclass(frozen=True)
class Diff:
    """How observed entries differ from a golden manifest."""

    added: tuple[Entry, ...]
    removed: tuple[Entry, ...]
    changed: tuple[Change, ...]

    @property
    def is_empty(self) -> bool:
        """True when nothing differs."""
        return not (self.added or self.removed or self.changed)


_COMPARED = tuple(f.name for f in fields(Entry) if f.name != "path")


def diff(manifest: GoldenManifest, entries: Iterable[Entry]) -> Diff:
    """Compare observed ``entries`` with ``manifest``.

    Args:
        manifest: The expected state.
        entries: What was observed (any order; the root ``/`` is ignored).

    Returns:
        Added, removed and changed paths, each sorted by path bytes.
    """
    expected = manifest.by_path()
    actual = {entry.path: entry for entry in entries if entry.path != "/"}
    added = [actual[p] for p in actual.keys() - expected.keys()]
    removed = [expected[p] for p in expected.keys() - actual.keys()]
    changed = []
    for path in expected.keys() & actual.keys():
        want, got = expected[path], actual[path]
        names = tuple(n for n in _COMPARED if getattr(want, n) != getattr(got, n))
        if names:
            changed.append(Change(path, names, want, got))
    return Diff(
        tuple(sorted(added, key=_sort_key)),
        tuple(sorted(removed, key=_sort_key)),
        tuple(sorted(changed, key=lambda c: c.path.encode("utf-8", "surrogateescape"))),
    )


# --- Reading layers -------------------------------------------------------------


def entries_from_tar(stream: IO[bytes]) -> list[Entry]:
    """Read the entries of one uncompressed or compressed layer tar stream.

    Gzip is detected by tarfile; pass a zstd layer already decompressed.
    A member for the root folder itself (``./``) is skipped. Whiteout files
    (``.wh.<name>``) are returned as-is; :func:`merge_layers` applies them.

    Raises:
        IntegrityError: The stream is not a readable tar archive, or holds a
            member type a golden manifest cannot describe.
    """
    entries: list[Entry] = []
    sizes: dict[str, tuple[int, str | None]] = {}
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as archive:
            for member in archive:
                if member.name.strip("/") in ("", "."):
                    continue  # the root folder is not an entry
                entry = _entry_from_member(archive, member, sizes)
                sizes[entry.path] = (entry.size, entry.sha256)
                entries.append(entry)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise IntegrityError(
            f"layer is not a readable tar archive: {exc}",
            reference="layer-unreadable",
        ) from exc
    return entries


def _entry_from_member(
    archive: tarfile.TarFile,
    member: tarfile.TarInfo,
    sizes: Mapping[str, tuple[int, str | None]],
) -> Entry:
    kind = _TAR_TYPES.get(member.type)
    if kind is None:
        raise IntegrityError(
            f"layer member {member.name!r} has unsupported type {member.type!r}",
            reference="layer-member-unsupported",
        )
    path = "/" + member.name.strip("/").removeprefix("./")
    size, sha256, target, rdev = 0, None, None, None
    if kind == "file":
        size, sha256 = member.size, _hash_member(archive, member)
    elif kind == "symlink":
        target = member.linkname
    elif kind == "hardlink":
        target = "/" + member.linkname.strip("/").removeprefix("./")
        size, sha256 = sizes.get(target, (0, None))
    elif kind in ("char", "block"):
        rdev = (member.devmajor, member.devminor)
    xattrs = {
        key.removeprefix(_XATTR_PREFIX): value.encode("utf-8", "surrogateescape")
        for key, value in member.pax_headers.items()
        if key.removeprefix(_XATTR_PREFIX) in SECURITY_XATTRS
        and key.startswith(_XATTR_PREFIX)
    }
    return Entry(
        path, kind, member.mode & 0o7777, member.uid, member.gid,
        size, sha256, target, rdev, xattrs,
    )  # fmt: skip


def _hash_member(archive: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    digest = hashlib.sha256()
    handle = archive.extractfile(member)
    if handle is None:
        raise IntegrityError(
            f"layer member {member.name!r} has no content",
            reference="layer-unreadable",
        )
    while chunk := handle.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def merge_layers(layers: Iterable[Sequence[Entry]]) -> list[Entry]:
    """Apply layers in order (later paths win, whiteouts delete).

    Returns:
        The entries of the resulting file tree, unsorted.
    """
    tree: dict[str, Entry] = {}
    for layer in layers:
        for entry in layer:
            parent, _, name = entry.path.rpartition("/")
            if name == _OPAQUE:
                _drop_under(tree, parent or "/", keep_self=True)
            elif name.startswith(_WHITEOUT):
                _drop_under(tree, f"{parent}/{name.removeprefix(_WHITEOUT)}")
            else:
                tree[entry.path] = entry
    return list(tree.values())


def _drop_under(tree: dict[str, Entry], path: str, *, keep_self: bool = False) -> None:
    prefix = path.rstrip("/") + "/"
    for key in [k for k in tree if k.startswith(prefix) or k == path]:
        if not (keep_self and key == path):
            del tree[key]
