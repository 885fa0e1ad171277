"""The software bill of materials of a built image, as CycloneDX 1.6 JSON.

Debian packages come from the image's ``var/lib/dpkg/status`` when the base
was installed with dpkg, and from the build's resolved package list (name,
version, architecture and ``.deb`` SHA-256) when it was only extracted; files
copied from the repository are ``file`` components with their SHA-256.
Licences come from machine-readable ``/usr/share/doc/<pkg>/copyright`` files
when they exist; other packages are listed without a licence rather than with
a guess.

The document is reproducible: its serial number derives from the image
digest and its timestamp is the build's ``SOURCE_DATE_EPOCH``, and it is
validated against the CycloneDX 1.6 schema before it is returned.

Example:
    >>> packages = read_dpkg_status(rootfs)
    >>> text = build_sbom("web", digest, packages, [], created=epoch_time)
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.dependency import Dependency
from cyclonedx.model.license import DisjunctiveLicense
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.spdx import fixup_id
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from zerodrift import __version__

__all__ = [
    "SBOM_MEDIA_TYPE",
    "DebPackage",
    "FileComponent",
    "build_sbom",
    "file_components",
    "merge_packages",
    "read_dpkg_status",
]

SBOM_MEDIA_TYPE = "application/vnd.cyclonedx+json"
_NAMESPACE = uuid.UUID("0b7c1d2e-8f4a-4e57-a3c1-6d2b9e0f4c88")
_STATUS = "var/lib/dpkg/status"


@dataclass(frozen=True)
class DebPackage:
    """A Debian package installed (or extracted) in the image.

    Attributes:
        name: Package name.
        version: Full Debian version (``1:1.36.1-9``).
        architecture: ``amd64``, ``all``...
        licenses: Licence names or SPDX identifiers, when known.
        deb_sha256: SHA-256 of the ``.deb`` it came from, when known.
    """

    name: str
    version: str
    architecture: str
    licenses: tuple[str, ...] = ()
    deb_sha256: str | None = None

    @property
    def purl(self) -> PackageURL:
        """The package URL (``pkg:deb/debian/NAME@VERSION?arch=ARCH``)."""
        return PackageURL(
            type="deb",
            namespace="debian",
            name=self.name,
            version=self.version,
            qualifiers={"arch": self.architecture},
        )


@dataclass(frozen=True)
class FileComponent:
    """A file placed in the image from the repository."""

    path: str
    sha256: str
    size: int
    source: str | None = field(default=None)


def read_dpkg_status(rootfs: Path) -> list[DebPackage]:
    """Parse the installed packages of ``rootfs`` from dpkg's status file.

    Only packages whose status is ``install ok installed`` count. An image
    without a status file (a ``scratch`` image, or an extracted base) has no
    installed packages.
    """
    try:
        text = (rootfs / _STATUS).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    packages = []
    for stanza in text.split("\n\n"):
        fields = _parse_stanza(stanza)
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            name = fields["Package"]
            packages.append(
                DebPackage(
                    name,
                    fields.get("Version", ""),
                    fields.get("Architecture", ""),
                    _copyright_licenses(rootfs, name),
                )
            )
    return sorted(packages, key=lambda p: (p.name, p.architecture))


def merge_packages(
    installed: Iterable[DebPackage], resolved: Iterable[DebPackage]
) -> list[DebPackage]:
    """Join dpkg's view with the build's resolved ``.deb`` list.

    A package in both keeps dpkg's version and licences and gains the
    ``.deb`` hash; a package only in ``resolved`` (an extracted base) is
    listed as resolved.
    """
    merged = {(p.name, p.architecture): p for p in resolved}
    for package in installed:
        known = merged.get((package.name, package.architecture))
        merged[(package.name, package.architecture)] = DebPackage(
            package.name,
            package.version,
            package.architecture,
            package.licenses or (known.licenses if known else ()),
            known.deb_sha256 if known else None,
        )
    return sorted(merged.values(), key=lambda p: (p.name, p.architecture))


def package_licenses(rootfs: Path, name: str) -> tuple[str, ...]:
    """Licences named by a package's machine-readable copyright file."""
    return _copyright_licenses(rootfs, name)


def file_components(rootfs: Path, paths: Sequence[str]) -> list[FileComponent]:
    """Describe the regular files at or below each image path in ``paths``.

    Raises:
        OSError: A file cannot be read.
    """
    found: dict[str, FileComponent] = {}
    for inner in paths:
        top = rootfs / inner.lstrip("/")
        candidates = sorted(top.rglob("*")) if top.is_dir() else [top]
        for path in candidates:
            if path.is_symlink() or not path.is_file():
                continue
            data = path.read_bytes()
            image_path = "/" + path.relative_to(rootfs).as_posix()
            found[image_path] = FileComponent(
                image_path, hashlib.sha256(data).hexdigest(), len(data)
            )
    return [found[k] for k in sorted(found)]


def build_sbom(
    image_name: str,
    image_digest: str,
    packages: Sequence[DebPackage],
    files: Sequence[FileComponent],
    *,
    created: datetime,
) -> str:
    """Return the image's SBOM as CycloneDX 1.6 JSON text.

    Args:
        image_name: The image's name in the spec.
        image_digest: ``sha256:<hex>`` of the image manifest.
        packages: Debian packages in the image.
        files: Files copied into the image.
        created: The build time (``SOURCE_DATE_EPOCH``), timezone-aware.

    Raises:
        RuntimeError: The produced document fails schema validation (a bug).
    """
    bom = Bom(serial_number=uuid.uuid5(_NAMESPACE, image_digest))
    bom.metadata.timestamp = created
    bom.metadata.component = root = Component(
        name=image_name,
        version=image_digest,
        type=ComponentType.CONTAINER,
        bom_ref=f"image:{image_name}",
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=image_digest[7:])],
        purl=PackageURL(type="oci", name=image_name, version=image_digest),
        properties=[Property(name="zerodrift:version", value=__version__)],
    )
    components = [_package_component(p) for p in packages]
    components += [_file_component(f) for f in files]
    for component in components:
        bom.components.add(component)
    bom.dependencies.add(
        Dependency(
            ref=root.bom_ref,
            dependencies=[Dependency(ref=c.bom_ref) for c in components],
        )
    )
    text = JsonV1Dot6(bom).output_as_string(indent=2)
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        raise RuntimeError(f"produced an invalid CycloneDX document: {error}")
    return text


def _package_component(package: DebPackage) -> Component:
    purl = package.purl
    return Component(
        name=package.name,
        version=package.version,
        type=ComponentType.LIBRARY,
        bom_ref=purl.to_string(),
        purl=purl,
        licenses=[_license(name) for name in package.licenses],
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=package.deb_sha256)]
        if package.deb_sha256
        else None,
        properties=[
            Property(name="zerodrift:architecture", value=package.architecture)
        ],
    )


def _file_component(item: FileComponent) -> Component:
    return Component(
        name=item.path,
        type=ComponentType.FILE,
        bom_ref=f"file:{item.path}",
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=item.sha256)],
        properties=[Property(name="zerodrift:size", value=str(item.size))],
    )


def _license(name: str) -> DisjunctiveLicense:
    spdx = fixup_id(name)
    return DisjunctiveLicense(id=spdx) if spdx else DisjunctiveLicense(name=name)


def _parse_stanza(stanza: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for line in stanza.splitlines():
        if line[:1] in (" ", "\t"):
            if key is not None:
                fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def _copyright_licenses(rootfs: Path, name: str) -> tuple[str, ...]:
    path = rootfs / "usr/share/doc" / name / "copyright"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ()
    # Only machine-readable (DEP-5) files name their licences reliably.
    if not text.startswith("Format:"):
        return ()
    names = set()
    for stanza in text.split("\n\n"):
        value = _parse_stanza(stanza).get("License", "")
        first = value.split("\n", 1)[0].strip()
        if first and PurePosixPath(first).name == first:
            names.add(first)
    return tuple(sorted(names))
