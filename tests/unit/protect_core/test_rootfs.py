"""Safe extraction of base archives, and the checks on ``copy`` sources."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from zerodrift.errors import ConfigError
from zerodrift.protect.rootfs import Tree, assemble_overlay, extract_tar
from zerodrift.spec.models import Image

EPOCH = 1_700_000_000


def _archive(*members: tuple[str, str, bytes | str]) -> io.BytesIO:
    """Build a tar: (name, kind, content or link target)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                assert isinstance(payload, bytes)
                info.size = len(payload)
                archive.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
                         "lnk": tarfile.LNKTYPE}[kind]  # fmt: skip
            info.linkname = str(payload)
            archive.addfile(info)
    buffer.seek(0)
    return buffer


def _extract(tmp_path: Path, stream: io.BytesIO) -> Tree:
    tree = Tree(tmp_path / "root")
    tree.root.mkdir()
    extract_tar(stream, tree, origin="images.web.base")
    return tree


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("../escape", r"'\.\.'"),
        ("etc/../../escape", r"'\.\.'"),
        ("/etc/passwd", "absolute"),
    ],
)
def test_traversal_and_absolute_entries_are_refused(
    tmp_path: Path, name: str, what: str
) -> None:
    with pytest.raises(ConfigError, match=what) as info:
        _extract(tmp_path, _archive((name, "file", b"owned")))

    assert info.value.reference == "archive-unsafe-path"
    assert info.value.location is not None
    assert info.value.location.field == "images.web.base"
    assert not (tmp_path / "escape").exists()


def test_write_through_a_symlink_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    stream = _archive(("etc", "sym", str(outside)), ("etc/passwd", "file", b"x"))

    with pytest.raises(ConfigError, match="symbolic link"):
        _extract(tmp_path, stream)
    assert list(outside.iterdir()) == []


def test_hard_link_out_of_the_archive_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("host secret")
    stream = _archive(("stolen", "lnk", "../secret"))

    with pytest.raises(ConfigError, match=r"'\.\.'"):
        _extract(tmp_path, stream)


def test_hard_link_to_a_missing_member_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="outside the archive"):
        _extract(tmp_path, _archive(("b", "lnk", "a")))


def test_good_archive_is_extracted_with_owners_and_whiteouts(tmp_path: Path) -> None:
    stream = _archive(
        ("./", "dir", ""),
        ("./etc/", "dir", ""),
        ("./etc/passwd", "file", b"root:x:0:0\n"),
        ("./etc/shadow", "file", b"gone"),
        ("./etc/.wh.shadow", "file", b""),
        ("./bin/", "dir", ""),
        ("./bin/sh", "sym", "busybox"),
        ("./bin/busybox", "file", b"\x7fELF"),
        ("./bin/ash", "lnk", "bin/busybox"),
    )

    tree = _extract(tmp_path, stream)

    root = tree.root
    assert (root / "etc" / "passwd").read_bytes() == b"root:x:0:0\n"
    assert not (root / "etc" / "shadow").exists()
    assert os.readlink(root / "bin" / "sh") == "busybox"
    assert (root / "bin" / "ash").stat().st_ino == (
        root / "bin" / "busybox"
    ).stat().st_ino
    assert tree.owners["/etc/passwd"] == (0, 0)
    assert "/etc/shadow" not in tree.owners


# --- copy items --------------------------------------------------------------------


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "app").mkdir(parents=True)
    (root / "app" / "index.html").write_text("<h1>hi</h1>\n")
    (root / "app" / "run.sh").write_text("#!/bin/sh\n")
    (root / "app" / "run.sh").chmod(0o755)
    return root


def _overlay(tmp_path: Path, project: Path, copy: list[dict[str, str]]) -> Tree:
    image = Image.model_validate({"copy": copy, "user": "1000:1000",
                                  "writable": ["/tmp", "/var/cache/app"]})  # fmt: skip
    base = Tree(tmp_path / "base")
    overlay = Tree(tmp_path / "overlay")
    base.root.mkdir()
    overlay.root.mkdir()
    assemble_overlay(image, "web", project, base, overlay, epoch=EPOCH)
    return overlay


def test_copy_sets_modes_owners_and_writable_folders(tmp_path: Path) -> None:
    project = _project(tmp_path)

    overlay = _overlay(
        tmp_path, project, [{"src": "app", "dest": "/srv/www", "owner": "33:33"}]
    )

    root = overlay.root
    assert (root / "srv" / "www" / "index.html").stat().st_mode & 0o7777 == 0o644
    assert (root / "srv" / "www" / "run.sh").stat().st_mode & 0o7777 == 0o755
    assert (root / "srv" / "www" / "index.html").stat().st_mtime == EPOCH
    assert overlay.owners["/srv/www/index.html"] == (33, 33)
    assert overlay.owners["/srv"] == (0, 0)
    assert (root / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert overlay.owners["/var/cache/app"] == (1000, 1000)


def test_copy_mode_applies_to_files(tmp_path: Path) -> None:
    project = _project(tmp_path)

    overlay = _overlay(
        tmp_path, project, [{"src": "app/index.html", "dest": "/srv/", "mode": "0400"}]
    )

    assert (overlay.root / "srv" / "index.html").stat().st_mode & 0o7777 == 0o400


@pytest.mark.parametrize("src", ["../outside", "app/../../outside", "/etc"])
def test_copy_source_outside_the_project_is_refused(tmp_path: Path, src: str) -> None:
    project = _project(tmp_path)
    (tmp_path / "outside").write_text("not yours")

    with pytest.raises(ConfigError) as info:
        _overlay(tmp_path, project, [{"src": src, "dest": "/x"}])

    assert info.value.reference == "copy-source-refused"
    assert info.value.location is not None
    assert info.value.location.field == "images.web.copy[0].src"


def test_absolute_symlink_in_a_copied_folder_is_refused(tmp_path: Path) -> None:
    project = _project(tmp_path)
    (project / "app" / "passwd").symlink_to("/etc/passwd")

    with pytest.raises(ConfigError, match="absolute link") as info:
        _overlay(tmp_path, project, [{"src": "app", "dest": "/srv"}])
    assert "app/passwd" in info.value.message


def test_relative_symlink_escaping_the_repository_is_refused(tmp_path: Path) -> None:
    project = _project(tmp_path)
    (tmp_path / "secret").write_text("s")
    (project / "app" / "leak").symlink_to("../../secret")

    with pytest.raises(ConfigError, match="outside the project"):
        _overlay(tmp_path, project, [{"src": "app", "dest": "/srv"}])


def test_symlinked_source_escaping_the_repository_is_refused(tmp_path: Path) -> None:
    project = _project(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    (project / "linked").symlink_to(tmp_path / "elsewhere")

    with pytest.raises(ConfigError, match="outside the project"):
        _overlay(tmp_path, project, [{"src": "linked", "dest": "/srv"}])


def test_relative_symlink_inside_the_repository_is_kept(tmp_path: Path) -> None:
    project = _project(tmp_path)
    (project / "app" / "home.html").symlink_to("index.html")

    overlay = _overlay(tmp_path, project, [{"src": "app", "dest": "/srv"}])

    assert os.readlink(overlay.root / "srv" / "home.html") == "index.html"


def test_fifo_in_a_copied_folder_is_refused(tmp_path: Path) -> None:
    project = _project(tmp_path)
    os.mkfifo(project / "app" / "pipe")

    with pytest.raises(ConfigError, match="device node, FIFO or socket"):
        _overlay(tmp_path, project, [{"src": "app", "dest": "/srv"}])


def test_hard_link_to_a_file_outside_the_copied_folder_is_refused(
    tmp_path: Path,
) -> None:
    project = _project(tmp_path)
    os.link(project / "app" / "index.html", project / "elsewhere.html")

    with pytest.raises(ConfigError, match="hard link"):
        _overlay(tmp_path, project, [{"src": "app", "dest": "/srv"}])


def test_hard_links_inside_the_copied_folder_are_kept(tmp_path: Path) -> None:
    project = _project(tmp_path)
    os.link(project / "app" / "index.html", project / "app" / "same.html")

    overlay = _overlay(tmp_path, project, [{"src": "app", "dest": "/srv"}])

    first = (overlay.root / "srv" / "index.html").stat()
    assert (overlay.root / "srv" / "same.html").stat().st_ino == first.st_ino


def test_missing_copy_source_names_the_field(tmp_path: Path) -> None:
    project = _project(tmp_path)

    with pytest.raises(ConfigError) as info:
        _overlay(tmp_path, project, [{"src": "nope", "dest": "/srv"}])
    assert info.value.reference == "copy-source-missing"
