"""Hardening checks over an image's final root folder.

The checks look for what an attacker who lands in a container would want:
setuid and setgid programs, files anyone can change, a root user, shells and
package managers, SSH servers, private keys and other secrets baked into the
image, a ``/tmp`` without the sticky bit, and services that cannot tell
whether they are healthy. Each finding names its check, severity, path and
the CSF 2.0 subcategory it serves.

The module has two halves. :func:`scan_rootfs` walks a folder once and keeps
the few facts the checks need (:class:`PathFacts`); :func:`evaluate` is pure
logic over those facts and the recipe, so it is tested without a disk.
:func:`check_image` joins the two, and :func:`enforce` raises
:class:`HardeningError` when an unwaived high-severity finding or an expired
waiver remains.

Busybox deserves a note: it is a multi-call binary whose applets include
``sh``/``ash`` and ``dpkg``/``rpm``, so an image that ships it ships a shell
and a package manager even without applet links. Recipes that rely on it
must allow those in their hardening profile or waive the finding.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

from zerodrift.errors import VerificationError
from zerodrift.spec.models import Image, Waiver

__all__ = [
    "CHECKS",
    "Check",
    "HardeningError",
    "HardeningFinding",
    "HardeningReport",
    "PathFacts",
    "check_image",
    "enforce",
    "evaluate",
    "scan_rootfs",
]


class Severity(StrEnum):
    """How much a finding matters; only ``high`` fails a build."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@dataclass(frozen=True)
class Check:
    """A hardening check: its identifier, severity and CSF 2.0 subcategory."""

    id: str
    severity: Severity
    csf: str
    title: str


CHECKS: dict[str, Check] = {
    c.id: c
    for c in (
        Check("setuid", Severity.HIGH, "PR.AA-05", "setuid executable"),
        Check("setgid", Severity.MEDIUM, "PR.AA-05", "setgid executable"),
        Check("world-writable", Severity.HIGH, "PR.DS-01", "world-writable path"),
        Check("root-user", Severity.HIGH, "PR.AA-05", "runs as root"),
        Check("shell", Severity.HIGH, "PR.PS-01", "shell present"),
        Check("package-manager", Severity.HIGH, "PR.PS-05", "package manager present"),
        Check("ssh-server", Severity.HIGH, "PR.PS-01", "SSH server present"),
        Check("private-key", Severity.HIGH, "PR.DS-01", "private key in image"),
        Check("secret-file", Severity.HIGH, "PR.DS-01", "secret-looking file"),
        Check("tmp-mode", Severity.MEDIUM, "PR.PS-01", "temporary folder mode"),
        Check("health-check-missing", Severity.LOW, "PR.IR-03", "no health check"),
        Check("waiver-expired", Severity.HIGH, "GV.RM-06", "expired waiver"),
    )
}

# Executable names, matched on the file name in the bin folders below (busybox
# is handled on its own: it is both).
_SHELLS = frozenset(
    {"sh", "bash", "dash", "ash", "hush", "zsh", "ksh", "mksh", "ksh93", "csh"}
    | {"tcsh", "fish", "rbash", "yash", "posh"}
)
_PACKAGE_MANAGERS = frozenset(
    {"apt", "apt-get", "aptitude", "dpkg", "dpkg-deb", "rpm", "yum", "dnf"}
    | {"microdnf", "zypper", "apk", "pip", "pip3", "pipx", "easy_install", "npm"}
    | {"yarn", "pnpm", "gem", "conda", "mamba"}
)
_SSH_SERVERS = frozenset({"sshd", "dropbear", "tinysshd"})
_BIN_DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin")

# Secret-looking files by name (always) and by content (small files only).
_SECRET_NAMES = {
    "id_rsa": "SSH private key",
    "id_dsa": "SSH private key",
    "id_ecdsa": "SSH private key",
    "id_ed25519": "SSH private key",
    ".netrc": "netrc credentials",
    ".pgpass": "PostgreSQL password file",
    ".git-credentials": "git credentials",
    "credentials": "cloud credentials",
    ".htpasswd": "password hashes",
    "config.json": "container registry credentials",
    "config": "Kubernetes credentials",
}
# Names that are secrets only inside these folders.
_SECRET_NAME_PARENTS = {
    "credentials": {".aws", ".gcloud"},
    "config.json": {".docker"},
    "config": {".kube"},
}
_ENV_SECRET = re.compile(
    rb"^\s*(export\s+)?[A-Za-z0-9_]*(SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|PRIVATE_KEY"
    rb"|ACCESS_KEY)[A-Za-z0-9_]*\s*=\s*\S",
    re.MULTILINE | re.IGNORECASE,
)
_PRIVATE_KEY_MARK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+ )?PRIVATE KEY-----")
_AWS_KEY = re.compile(rb"\b(AKIA|ASIA)[0-9A-Z]{16}\b")
_PEM_KEY = "PEM private key"
_TMP = "/tmp"  # noqa: S108 - the image's /tmp, checked, never used here
_SNIFF_LIMIT = 1 << 20  # files larger than 1 MiB are not read for secrets


@dataclass(frozen=True)
class PathFacts:
    """What the checks need to know about one path in the image.

    Attributes:
        path: Absolute path inside the image (``/usr/bin/sh``).
        mode: ``st_mode`` (file type and permission bits).
        link_target: For symbolic links, where they point.
        secret: For small regular files, a description of a secret found in
            the content (``"PEM private key"``), else ``None``.
    """

    path: str
    mode: int
    link_target: str | None = None
    secret: str | None = None

    @property
    def name(self) -> str:
        """The last component of the path."""
        return PurePosixPath(self.path).name


@dataclass(frozen=True)
class HardeningFinding:
    """One problem found, with its waiver if one applies.

    Attributes:
        check: Identifier of the check (a key of :data:`CHECKS`).
        path: The path concerned, or ``None`` for image-wide findings.
        message: What was found, in one sentence.
        waiver: The reason given by the waiver that suppresses it, if any.
    """

    check: str
    path: str | None
    message: str
    waiver: str | None = None

    @property
    def severity(self) -> Severity:
        """The check's severity."""
        return CHECKS[self.check].severity

    @property
    def csf(self) -> str:
        """The CSF 2.0 subcategory the check serves."""
        return CHECKS[self.check].csf

    @property
    def blocking(self) -> bool:
        """Whether this finding alone fails the build."""
        return self.waiver is None and self.severity is Severity.HIGH

    def to_dict(self) -> dict[str, Any]:
        """Render for JSON output and attestations."""
        return {
            "check": self.check,
            "severity": self.severity.value,
            "csf": self.csf,
            "path": self.path,
            "message": self.message,
            "waived": self.waiver,
        }


@dataclass(frozen=True)
class HardeningReport:
    """All findings for one image, waived ones included."""

    image: str
    findings: tuple[HardeningFinding, ...] = field(default_factory=tuple)

    @property
    def blocking(self) -> list[HardeningFinding]:
        """Findings that fail the build."""
        return [f for f in self.findings if f.blocking]

    @property
    def passed(self) -> bool:
        """True when nothing blocks the build."""
        return not self.blocking

    def to_dict(self) -> dict[str, Any]:
        """Render for JSON output and attestations."""
        return {
            "image": self.image,
            "passed": self.passed,
            "findings": [f.to_dict() for f in self.findings],
        }


class HardeningError(VerificationError):
    """The image failed its hardening checks.

    Attributes:
        findings: The findings that block the build.
    """

    reference = "hardening-failed"

    def __init__(self, image: str, findings: Sequence[HardeningFinding]) -> None:
        lines = [f"image {image!r} failed {len(findings)} hardening check(s):"]
        lines += [
            f"  - [{f.severity.value}] {f.check}{' ' + f.path if f.path else ''}: "
            f"{f.message} ({f.csf})"
            for f in findings
        ]
        super().__init__(
            "\n".join(lines),
            hint="fix the recipe, or add a waiver with a reason and an expiry under "
            f"images.{image}.hardening.waivers",
        )
        self.findings = list(findings)


# --- The walk (IO) ----------------------------------------------------------


def scan_rootfs(rootfs: Path) -> list[PathFacts]:
    """Collect :class:`PathFacts` for every path below ``rootfs``, sorted.

    Symbolic links are recorded, never followed. Regular files up to 1 MiB
    are read to look for secrets.

    Raises:
        OSError: The folder cannot be read.
    """
    facts: list[PathFacts] = []
    stack = [rootfs]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                inner = "/" + Path(entry.path).relative_to(rootfs).as_posix()
                target = None
                secret = None
                if stat.S_ISLNK(st.st_mode):
                    target = os.readlink(entry.path)
                elif stat.S_ISDIR(st.st_mode):
                    stack.append(Path(entry.path))
                elif stat.S_ISREG(st.st_mode) and st.st_size <= _SNIFF_LIMIT:
                    secret = _sniff(Path(entry.path), inner)
                facts.append(PathFacts(inner, st.st_mode, target, secret))
    facts.sort(key=lambda f: f.path)
    return facts


def _sniff(path: Path, inner: str) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if _PRIVATE_KEY_MARK.search(data):
        return _PEM_KEY
    if _AWS_KEY.search(data):
        return "AWS access key id"
    name = PurePosixPath(inner).name
    if (name == ".env" or name.startswith(".env.")) and _ENV_SECRET.search(data):
        return "environment file with secret values"
    return None


# --- The checks (pure) --------------------------------------------------------


def evaluate(
    facts: Iterable[PathFacts],
    image: Image,
    *,
    image_name: str,
    has_health_check: bool,
    today: date,
) -> HardeningReport:
    """Run every check over ``facts`` and apply the recipe's waivers.

    Args:
        facts: The image's paths, as :func:`scan_rootfs` returns them.
        image: The recipe (user, hardening profile and waivers).
        image_name: The image's name in the spec, for messages.
        has_health_check: Whether every service running the image declares a
            health check.
        today: The date waivers are compared with.

    Returns:
        The report; waived findings carry the waiver's reason.
    """
    profile = image.hardening
    raw: list[HardeningFinding] = []
    for fact in facts:
        raw.extend(_path_findings(fact, image))
    uid = int(image.user.split(":", 1)[0])
    if uid == 0 and not profile.allow_root:
        raw.append(
            HardeningFinding(
                "root-user", None, f"the image runs as uid 0 (user {image.user!r})"
            )
        )
    if not has_health_check:
        raw.append(
            HardeningFinding(
                "health-check-missing",
                None,
                "no service running this image declares a health check",
            )
        )
    return HardeningReport(
        image_name, tuple(_apply_waivers(raw, profile.waivers, today))
    )


def _path_findings(fact: PathFacts, image: Image) -> list[HardeningFinding]:
    profile = image.hardening
    out: list[HardeningFinding] = []
    mode = fact.mode
    is_link = stat.S_ISLNK(mode)
    is_dir = stat.S_ISDIR(mode)
    is_exec_candidate = stat.S_ISREG(mode) or is_link
    in_bin = _in_bin_dir(fact.path)

    if stat.S_ISREG(mode) and mode & stat.S_ISUID:
        out.append(HardeningFinding("setuid", fact.path, "file has the setuid bit"))
    if stat.S_ISREG(mode) and mode & stat.S_ISGID:
        out.append(HardeningFinding("setgid", fact.path, "file has the setgid bit"))
    # Devices such as /dev/null are world-writable by design; links carry no
    # permissions of their own.
    writable_kind = stat.S_ISREG(mode) or is_dir
    if writable_kind and mode & stat.S_IWOTH and not (is_dir and mode & stat.S_ISVTX):
        kind = "folder without the sticky bit" if is_dir else "file"
        out.append(
            HardeningFinding(
                "world-writable",
                fact.path,
                f"world-writable {kind} (mode {stat.S_IMODE(mode):04o})",
            )
        )
    if fact.path == _TMP and is_dir and stat.S_IMODE(mode) != 0o1777:
        out.append(
            HardeningFinding(
                "tmp-mode",
                fact.path,
                f"{_TMP} has mode {stat.S_IMODE(mode):04o}; a non-root user needs 1777",
            )
        )
    if is_exec_candidate and in_bin:
        out.extend(
            _program_findings(
                fact,
                allow_shell=profile.allow_shell,
                allow_pm=profile.allow_package_manager,
            )
        )
    if stat.S_ISREG(mode):
        out.extend(_secret_findings(fact))
    return out


def _program_findings(
    fact: PathFacts, *, allow_shell: bool, allow_pm: bool
) -> list[HardeningFinding]:
    out: list[HardeningFinding] = []
    name = fact.name
    link = f" (link to {fact.link_target})" if fact.link_target else ""
    if name == "busybox":
        if not allow_shell:
            out.append(
                HardeningFinding(
                    "shell",
                    fact.path,
                    "busybox is a multi-call binary with the sh/ash shell applets",
                )
            )
        if not allow_pm:
            out.append(
                HardeningFinding(
                    "package-manager",
                    fact.path,
                    "busybox is a multi-call binary with the dpkg and rpm applets",
                )
            )
        return out
    if name in _SHELLS and not allow_shell:
        out.append(HardeningFinding("shell", fact.path, f"shell {name!r}{link}"))
    if name in _PACKAGE_MANAGERS and not allow_pm:
        out.append(
            HardeningFinding(
                "package-manager", fact.path, f"package manager {name!r}{link}"
            )
        )
    if name in _SSH_SERVERS:
        out.append(HardeningFinding("ssh-server", fact.path, f"SSH server {name!r}"))
    return out


def _secret_findings(fact: PathFacts) -> list[HardeningFinding]:
    name = fact.name
    parent = PurePosixPath(fact.path).parent.name
    if name in _SECRET_NAMES and (
        name not in _SECRET_NAME_PARENTS or parent in _SECRET_NAME_PARENTS[name]
    ):
        check = "private-key" if name.startswith("id_") else "secret-file"
        return [HardeningFinding(check, fact.path, _SECRET_NAMES[name])]
    if fact.secret == _PEM_KEY:
        return [
            HardeningFinding("private-key", fact.path, "file holds a PEM private key")
        ]
    if fact.secret is not None:
        return [HardeningFinding("secret-file", fact.path, f"file holds {fact.secret}")]
    return []


def _in_bin_dir(path: str) -> bool:
    return str(PurePosixPath(path).parent).lstrip("/") in _BIN_DIRS


def _apply_waivers(
    findings: list[HardeningFinding], waivers: Sequence[Waiver], today: date
) -> list[HardeningFinding]:
    out: list[HardeningFinding] = []
    for finding in findings:
        waiver = _matching_waiver(finding, waivers)
        if waiver is not None and waiver.expires >= today:
            out.append(replace(finding, waiver=waiver.reason))
        else:
            out.append(finding)
    for index, waiver in enumerate(waivers):
        if waiver.expires < today:
            where = f" for {waiver.path}" if waiver.path else ""
            out.append(
                HardeningFinding(
                    "waiver-expired",
                    None,
                    f"waiver #{index + 1} of check {waiver.check!r}{where} expired "
                    f"on {waiver.expires.isoformat()}",
                )
            )
    return out


def _matching_waiver(
    finding: HardeningFinding, waivers: Sequence[Waiver]
) -> Waiver | None:
    for waiver in waivers:
        if waiver.check == finding.check and waiver.path in (None, finding.path):
            return waiver
    return None


# --- Entry points --------------------------------------------------------------


def check_image(
    rootfs: Path,
    image: Image,
    *,
    image_name: str,
    has_health_check: bool,
    today: date,
) -> HardeningReport:
    """Walk ``rootfs`` and run every hardening check on it.

    Example:
        >>> report = check_image(root, fleet.images["web"], image_name="web",
        ...                      has_health_check=True, today=date.today())
        >>> enforce(report)  # raises HardeningError if anything blocks

    Raises:
        OSError: The folder cannot be read.
    """
    return evaluate(
        scan_rootfs(rootfs),
        image,
        image_name=image_name,
        has_health_check=has_health_check,
        today=today,
    )


def enforce(report: HardeningReport) -> None:
    """Raise when the report holds a blocking finding.

    Raises:
        HardeningError: An unwaived high-severity finding or an expired
            waiver remains; the error lists each one.
    """
    if report.blocking:
        raise HardeningError(report.image, report.blocking)
