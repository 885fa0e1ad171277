"""SBOM: dpkg status parsing, licences, file components, schema-valid output."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from zerodrift.protect.sbom import (
    DebPackage,
    build_sbom,
    file_components,
    merge_packages,
    read_dpkg_status,
)

DIGEST = "sha256:" + "ab" * 32
CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

STATUS = """\
Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u4
Description: GNU C Library
 shared libraries

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: base-files
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u5
"""

DEP5 = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: glibc

Files: *
Copyright: 1991 Free Software Foundation
License: LGPL-2.1+
 long text

Files: debian/*
License: GPL-2.0-only
"""


def _rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(STATUS)
    (root / "usr/share/doc/libc6").mkdir(parents=True)
    (root / "usr/share/doc/libc6/copyright").write_text(DEP5)
    (root / "srv/www/css").mkdir(parents=True)
    (root / "srv/www/index.html").write_text("<h1>hi</h1>\n")
    (root / "srv/www/css/site.css").write_text("h1{}\n")
    (root / "srv/www/link").symlink_to("index.html")
    return root


def test_reads_installed_packages_with_licences(tmp_path: Path) -> None:
    packages = read_dpkg_status(_rootfs(tmp_path))
    assert [(p.name, p.version, p.architecture) for p in packages] == [
        ("base-files", "12.4+deb12u5", "amd64"),
        ("libc6", "2.36-9+deb12u4", "amd64"),
    ]
    assert packages[1].licenses == ("GPL-2.0-only", "LGPL-2.1+")
    assert packages[0].licenses == ()
    assert packages[1].purl.to_string() == (
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64"
    )


def test_no_status_file_means_no_installed_packages(tmp_path: Path) -> None:
    assert read_dpkg_status(tmp_path) == []


def test_resolved_debs_fill_in_an_extracted_base() -> None:
    resolved = [
        DebPackage("busybox-static", "1:1.35.0-4+b3", "amd64", deb_sha256="c" * 64),
        DebPackage("libc6", "2.36-9+deb12u4", "amd64", deb_sha256="d" * 64),
    ]
    installed = [DebPackage("libc6", "2.36-9+deb12u4", "amd64", ("LGPL-2.1+",))]
    merged = merge_packages(installed, resolved)
    assert [(p.name, p.licenses, p.deb_sha256) for p in merged] == [
        ("busybox-static", (), "c" * 64),
        ("libc6", ("LGPL-2.1+",), "d" * 64),
    ]


def test_sbom_is_valid_complete_and_reproducible(tmp_path: Path) -> None:
    root = _rootfs(tmp_path)
    packages = merge_packages(
        read_dpkg_status(root),
        [DebPackage("libc6", "2.36-9+deb12u4", "amd64", deb_sha256="d" * 64)],
    )
    files = file_components(root, ["/srv/www"])
    assert [f.path for f in files] == ["/srv/www/css/site.css", "/srv/www/index.html"]

    text = build_sbom("web", DIGEST, packages, files, created=CREATED)
    assert text == build_sbom("web", DIGEST, packages, files, created=CREATED)
    bom = json.loads(text)
    assert bom["specVersion"] == "1.6"
    assert bom["metadata"]["timestamp"].startswith("2026-01-02T03:04:05")
    assert bom["metadata"]["component"]["version"] == DIGEST
    by_name = {c["name"]: c for c in bom["components"]}
    libc = by_name["libc6"]
    assert libc["purl"].startswith("pkg:deb/debian/libc6@")
    assert {lic["license"].get("id") for lic in libc["licenses"]} >= {"GPL-2.0-only"}
    assert libc["hashes"] == [{"alg": "SHA-256", "content": "d" * 64}]
    index = by_name["/srv/www/index.html"]
    assert index["type"] == "file"
    expected = hashlib.sha256(b"<h1>hi</h1>\n").hexdigest()
    assert index["hashes"][0]["content"] == expected
    other = build_sbom("web", "sha256:" + "cd" * 32, packages, files, created=CREATED)
    assert json.loads(other)["serialNumber"] != bom["serialNumber"]
