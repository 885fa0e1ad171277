"""Layer folders read back as a golden-manifest tree: whiteouts, hard links, cost.

Real folders on disk laid out as podman's overlay storage holds image layers
(whiteouts are character devices 0/0, opaque folders carry an
``overlay.opaque`` attribute); creating them needs root, as the tests run.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from zerodrift.detect.content import (
    ImageContent,
    ImageUse,
    LayerReader,
    content_findings,
    verify_images,
)
from zerodrift.detect.manifest import Entry, GoldenManifest, diff
from zerodrift.errors import IntegrityError, OperationalError

NOW = "2026-12-03T18:00:00.000000Z"


def _file(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


def _golden(name: str, entries: list[Entry]) -> GoldenManifest:
    return GoldenManifest.build(name, entries)


def _f(path: str, data: bytes, mode: int = 0o644) -> Entry:
    return Entry(path, "file", mode, 0, 0, len(data), hashlib.sha256(data).hexdigest())


def _d(path: str, mode: int = 0o755) -> Entry:
    return Entry(path, "dir", mode, 0, 0)


@pytest.fixture
def layers(tmp_path: Path) -> list[str]:
    """Two layers: the upper deletes /b, makes /a opaque and links a file."""
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    _file(lower / "a" / "old", b"old")
    _file(lower / "b" / "gone", b"gone")
    _file(lower / "bin" / "tool", b"\x7fELF tool", 0o755)
    os.link(lower / "bin" / "tool", lower / "bin" / "tool2")
    os.symlink("tool", lower / "bin" / "alias")
    (upper / "a").mkdir(parents=True)
    try:
        os.setxattr(upper / "a", "trusted.overlay.opaque", b"y")
    except OSError as exc:  # pragma: no cover - depends on the file system
        pytest.skip(f"trusted extended attributes unavailable here: {exc}")
    _file(upper / "a" / "new", b"new")
    os.mknod(upper / "b", 0o600 | 0o020000, os.makedev(0, 0))  # a whiteout
    for folder in (lower, upper):  # whatever the umask, as the manifest says
        for root, dirs, _files in os.walk(folder):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o755)  # noqa: S103
    return [str(lower), str(upper)]


def _expected() -> GoldenManifest:
    tool = _f("/bin/tool", b"\x7fELF tool", 0o755)
    return _golden(
        "web",
        [
            _d("/a"),
            _f("/a/new", b"new"),
            _d("/bin"),
            tool,
            Entry(
                "/bin/tool2",
                "hardlink",
                0o755,
                0,
                0,
                tool.size,
                tool.sha256,
                "/bin/tool",
            ),
            Entry("/bin/alias", "symlink", 0o777, 0, 0, target="tool"),
        ],
    )


def test_layers_merge_with_whiteouts_opaque_folders_and_hard_links(
    layers: list[str],
) -> None:
    golden = _expected()
    found = diff(golden, LayerReader().tree(layers, golden))
    assert found.is_empty, found


def test_a_changed_added_or_removed_path_is_found(layers: list[str]) -> None:
    lower = Path(layers[0])
    (lower / "bin" / "tool").write_bytes(b"\x7fELF evil")  # both names change
    _file(lower / "bin" / "implant", b"#!/bin/sh\n", 0o755)
    (lower / "bin" / "alias").unlink()
    golden = _expected()
    found = diff(golden, LayerReader().tree(layers, golden))
    assert [c.path for c in found.changed] == ["/bin/tool", "/bin/tool2"]
    assert found.changed[0].attributes == ("sha256",)
    assert [e.path for e in found.added] == ["/bin/implant"]
    assert [e.path for e in found.removed] == ["/bin/alias"]


def test_each_image_once_each_shared_layer_hashed_once(layers: list[str]) -> None:
    golden = _expected()
    uses = [
        ImageUse("web", "sha256:" + "1" * 64, "id1", ("web-1", "web-2"), ("web",)),
        ImageUse("api", "sha256:" + "2" * 64, "id2", ("api-1",), ("api",)),
    ]
    reader = LayerReader()
    check = verify_images(
        uses, golden=lambda _u: (golden, True), folders=lambda _u: layers, reader=reader
    )
    assert [r.diff.is_empty for r in check.images if r.diff] == [True, True]
    # /a/new, /bin/tool and /bin/tool2: the lower layer's /a/old and /b/gone
    # are hidden, so never hashed; the second image reuses the hashes.
    assert check.files_hashed == 3
    assert check.images[1].files == 0
    assert content_findings(check, environment="dev", now=NOW) == []


def test_findings_name_the_image_its_nodes_and_each_path(layers: list[str]) -> None:
    (Path(layers[1]) / "a" / "new").write_bytes(b"defaced")
    use = ImageUse("web", "sha256:" + "1" * 64, "id1", ("web-1", "web-2"), ("web",))
    golden = _expected()

    def missing(_use: ImageUse) -> tuple[GoldenManifest, bool]:
        raise IntegrityError("no golden manifest", reference="golden-manifest-missing")

    check = verify_images(
        [use], golden=lambda _u: (golden, True), folders=lambda _u: layers
    )
    [finding] = content_findings(check, environment="dev", now=NOW)
    assert finding.kind == "image-tampered"
    assert finding.source == "image"
    assert finding.subject == f"image:web@{use.digest}"
    assert finding.details["nodes"] == ["web-1", "web-2"]
    assert finding.details["baseline"] == "signed golden manifest"
    [change] = finding.details["changes"]
    assert change["path"] == "/a/new"
    assert change["kind"] == "changed"
    assert change["expected"]["sha256"] == hashlib.sha256(b"new").hexdigest()
    assert change["actual"]["sha256"] == hashlib.sha256(b"defaced").hexdigest()
    assert "PR.DS-01" in finding.csf

    unverifiable = verify_images([use], golden=missing, folders=lambda _u: layers)
    assert isinstance(unverifiable.images[0], ImageContent)
    [finding] = content_findings(unverifiable, environment="dev", now=NOW)
    assert finding.kind == "image-unverified"
    assert finding.details["reference"] == "golden-manifest-missing"


def test_storage_that_cannot_be_read_is_reported_not_retried(
    layers: list[str],
) -> None:
    use = ImageUse("web", "sha256:" + "1" * 64, "id1", ("web-1",), ("web",))

    def vfs(_use: ImageUse) -> list[str]:
        raise OperationalError(
            "stored with the vfs driver", reference="image-storage-unsupported"
        )

    def down(_use: ImageUse) -> list[str]:
        raise OperationalError("podman is down", reference="podman-unreachable")

    golden = _expected()
    check = verify_images([use], golden=lambda _u: (golden, True), folders=vfs)
    [finding] = content_findings(check, environment="dev", now=NOW)
    assert finding.kind == "image-unverified"
    assert finding.details["reference"] == "image-storage-unsupported"
    with pytest.raises(OperationalError, match="podman is down"):
        verify_images([use], golden=lambda _u: (golden, True), folders=down)
