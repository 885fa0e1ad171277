"""Golden manifests: format, RFC 6962 Merkle root, comparison, layer merging."""

from __future__ import annotations

import hashlib
import json

import pytest

from zerodrift.detect.manifest import (
    SCHEMA,
    Entry,
    GoldenManifest,
    diff,
    merge_layers,
    merkle_root,
)
from zerodrift.errors import IntegrityError

ETC = Entry("/etc", "dir", 0o755, 0, 0)
PASSWD = Entry("/etc/passwd", "file", 0o644, 0, 0, 5, "ab" * 32)
SH = Entry("/bin/sh", "symlink", 0o777, 0, 0, target="busybox")
PING = Entry(
    "/bin/ping", "file", 0o4755, 0, 0, 3, "cd" * 32,
    xattrs={"security.capability": b"\x01\x02"},
)  # fmt: skip
NULL = Entry("/dev/null", "char", 0o666, 0, 0, rdev=(1, 3))


def _leaf(entry: Entry) -> bytes:
    # Independent of the module: the canonical JSON written out by hand.
    data = json.dumps(entry.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(b"\x00" + data.encode()).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def test_merkle_root_follows_rfc6962_for_three_leaves() -> None:
    a, b, c = _leaf(ETC), _leaf(PASSWD), _leaf(SH)

    expected = _node(_node(a, b), c).hex()

    assert merkle_root([ETC, PASSWD, SH]) == expected
    assert merkle_root([ETC]) == a.hex()
    assert merkle_root([]) == hashlib.sha256(b"").hexdigest()


def test_merkle_root_of_five_leaves_splits_at_four() -> None:
    entries = [ETC, PASSWD, SH, PING, NULL]
    h = [_leaf(e) for e in entries]

    expected = _node(_node(_node(h[0], h[1]), _node(h[2], h[3])), h[4]).hex()

    assert merkle_root(entries) == expected


def test_manifest_json_round_trips_sorted_by_path_bytes() -> None:
    manifest = GoldenManifest.build("web", [PASSWD, SH, ETC, PING, NULL])

    document = json.loads(manifest.to_json())

    assert document["schema"] == SCHEMA
    assert document["image"] == "web"
    assert [e["path"] for e in document["entries"]] == [
        "/bin/ping", "/bin/sh", "/dev/null", "/etc", "/etc/passwd",
    ]  # fmt: skip
    assert document["entries"][0]["xattrs"] == {"security.capability": "AQI="}
    assert document["entries"][0]["mode"] == 0o4755
    assert document["entries"][2]["rdev"] == [1, 3]
    assert "sha256" not in document["entries"][1]
    assert GoldenManifest.from_json(manifest.to_json()) == manifest


def test_altered_manifest_fails_its_merkle_root() -> None:
    manifest = GoldenManifest.build("web", [ETC, PASSWD])
    document = json.loads(manifest.to_json())
    document["entries"][1]["mode"] = 0o666

    with pytest.raises(IntegrityError) as info:
        GoldenManifest.from_json(json.dumps(document).encode())
    assert info.value.reference == "golden-manifest-root-mismatch"


def test_diff_reports_added_removed_and_changed_attributes() -> None:
    manifest = GoldenManifest.build("web", [ETC, PASSWD, SH])
    tampered = Entry("/etc/passwd", "file", 0o666, 0, 0, 6, "ef" * 32)
    dropper = Entry("/tmp/x", "file", 0o755, 0, 0, 1, "00" * 32)

    result = diff(manifest, [ETC, tampered, dropper, Entry("/", "dir", 0o755, 0, 0)])

    assert result.added == (dropper,)
    assert result.removed == (SH,)
    assert len(result.changed) == 1
    assert result.changed[0].path == "/etc/passwd"
    assert result.changed[0].attributes == ("mode", "size", "sha256")
    assert diff(manifest, [SH, PASSWD, ETC]).is_empty


def test_merge_applies_later_layers_and_whiteouts() -> None:
    base = [ETC, PASSWD, SH, Entry("/opt", "dir", 0o755, 0, 0), NULL]
    new_passwd = Entry("/etc/passwd", "file", 0o600, 0, 0, 1, "11" * 32)
    top = [
        new_passwd,
        Entry("/bin/.wh.sh", "file", 0, 0, 0, 0, hashlib.sha256(b"").hexdigest()),
        Entry("/dev/.wh..wh..opq", "file", 0, 0, 0),
    ]

    merged = {e.path: e for e in merge_layers([base, top])}

    assert merged["/etc/passwd"] == new_passwd
    assert "/bin/sh" not in merged
    assert "/dev/null" not in merged
    assert "/opt" in merged
