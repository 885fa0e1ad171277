"""Hardening checks: pure rules over path facts, and the walk over a real folder."""

from __future__ import annotations

import os
import stat
from datetime import date
from pathlib import Path

import pytest

from zerodrift.protect.hardening import (
    HardeningError,
    PathFacts,
    check_image,
    enforce,
    evaluate,
)
from zerodrift.spec.models import Image

TODAY = date(2026, 12, 3)
REG = stat.S_IFREG
DIR = stat.S_IFDIR
LNK = stat.S_IFLNK


def _image(**fields: object) -> Image:
    return Image.model_validate(fields)


def _checks(
    facts: list[PathFacts], image: Image | None = None, **kw: object
) -> set[tuple[str, str | None]]:
    report = evaluate(
        facts,
        image or _image(),
        image_name="web",
        has_health_check=bool(kw.get("health", True)),
        today=TODAY,
    )
    return {(f.check, f.path) for f in report.findings if f.waiver is None}


def test_clean_image_has_no_findings() -> None:
    facts = [
        PathFacts("/srv", DIR | 0o755),
        PathFacts("/srv/index.html", REG | 0o444),
        PathFacts("/tmp", DIR | 0o1777),
    ]
    assert _checks(facts) == set()


def test_setuid_setgid_and_world_writable_are_found() -> None:
    facts = [
        PathFacts("/usr/bin/passwd", REG | 0o4755),
        PathFacts("/usr/bin/wall", REG | 0o2755),
        PathFacts("/srv/data", DIR | 0o777),
        PathFacts("/srv/log.txt", REG | 0o666),
        PathFacts("/usr/bin/x", LNK | 0o777, link_target="y"),
        PathFacts("/dev/null", stat.S_IFCHR | 0o666),
    ]
    assert _checks(facts) == {
        ("setuid", "/usr/bin/passwd"),
        ("setgid", "/usr/bin/wall"),
        ("world-writable", "/srv/data"),
        ("world-writable", "/srv/log.txt"),
    }


def test_tmp_must_be_1777() -> None:
    assert _checks([PathFacts("/tmp", DIR | 0o755)]) == {("tmp-mode", "/tmp")}


def test_root_user_unless_allowed() -> None:
    assert _checks([], _image(user="0:0")) == {("root-user", None)}
    allowed = _image(user="0", hardening={"allow_root": True})
    assert _checks([], allowed) == set()


def test_shells_package_managers_and_ssh() -> None:
    facts = [
        PathFacts("/bin/sh", LNK | 0o777, link_target="dash"),
        PathFacts("/usr/bin/apt-get", REG | 0o755),
        PathFacts("/usr/sbin/sshd", REG | 0o755),
        PathFacts("/usr/share/doc/bash", DIR | 0o755),
    ]
    assert _checks(facts) == {
        ("shell", "/bin/sh"),
        ("package-manager", "/usr/bin/apt-get"),
        ("ssh-server", "/usr/sbin/sshd"),
    }
    profile = _image(hardening={"allow_shell": True, "allow_package_manager": True})
    assert _checks(facts, profile) == {("ssh-server", "/usr/sbin/sshd")}


def test_busybox_binary_is_a_shell_and_a_package_manager() -> None:
    facts = [
        PathFacts("/bin/busybox", REG | 0o755),
        PathFacts("/bin/cat", LNK | 0o777, link_target="busybox"),
    ]
    assert _checks(facts) == {
        ("shell", "/bin/busybox"),
        ("package-manager", "/bin/busybox"),
    }


def test_secrets_by_name_and_content() -> None:
    facts = [
        PathFacts("/root/.ssh/id_rsa", REG | 0o600),
        PathFacts("/home/app/.aws/credentials", REG | 0o600),
        PathFacts("/srv/credentials", REG | 0o644),
        PathFacts("/root/.docker/config.json", REG | 0o600),
        PathFacts("/srv/config.json", REG | 0o644),
        PathFacts("/home/app/.kube/config", REG | 0o600),
        PathFacts("/etc/ssl/private/x.pem", REG | 0o600, secret="PEM private key"),
        PathFacts("/srv/.env", REG | 0o644, secret="environment file with secrets"),
    ]
    assert _checks(facts) == {
        ("private-key", "/root/.ssh/id_rsa"),
        ("secret-file", "/home/app/.aws/credentials"),
        ("secret-file", "/root/.docker/config.json"),
        ("secret-file", "/home/app/.kube/config"),
        ("private-key", "/etc/ssl/private/x.pem"),
        ("secret-file", "/srv/.env"),
    }


def test_missing_health_check_is_low_and_does_not_block() -> None:
    report = evaluate(
        [], _image(), image_name="web", has_health_check=False, today=TODAY
    )
    assert [f.check for f in report.findings] == ["health-check-missing"]
    assert report.passed
    enforce(report)


def test_waiver_suppresses_until_expiry_then_fails() -> None:
    facts = [PathFacts("/bin/busybox", REG | 0o755)]
    waived = _image(
        hardening={
            "waivers": [
                {
                    "check": "shell",
                    "reason": "demo uses busybox httpd",
                    "expires": TODAY,
                },
                {
                    "check": "package-manager",
                    "path": "/bin/busybox",
                    "reason": "demo uses busybox httpd",
                    "expires": "2027-01-01",
                },
            ]
        }
    )
    report = evaluate(
        facts, waived, image_name="web", has_health_check=True, today=TODAY
    )
    assert report.passed
    assert {f.waiver for f in report.findings} == {"demo uses busybox httpd"}

    later = evaluate(
        facts, waived, image_name="web", has_health_check=True, today=date(2026, 12, 4)
    )
    assert {(f.check, f.waiver is None) for f in later.blocking} == {
        ("shell", True),
        ("waiver-expired", True),
    }
    with pytest.raises(HardeningError) as info:
        enforce(later)
    assert info.value.reference == "hardening-failed"
    assert len(info.value.findings) == 2
    assert "expired on 2026-12-03" in info.value.message
    assert "images.web.hardening.waivers" in (info.value.hint or "")


def test_waiver_for_another_path_does_not_apply() -> None:
    facts = [PathFacts("/usr/bin/passwd", REG | 0o4755)]
    image = _image(
        hardening={
            "waivers": [
                {
                    "check": "setuid",
                    "path": "/usr/bin/su",
                    "reason": "needed for the demo",
                    "expires": "2030-01-01",
                }
            ]
        }
    )
    assert _checks(facts, image) == {("setuid", "/usr/bin/passwd")}


def test_walk_of_a_real_folder(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "tmp").mkdir()
    os.chmod(root / "tmp", 0o755)  # noqa: S103 - the finding under test
    busybox = root / "bin" / "busybox"
    busybox.write_bytes(b"\x7fELF")
    (root / "bin" / "sh").symlink_to("busybox")
    (root / "srv").mkdir()
    (root / "srv" / "key.pem").write_text(
        "-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----\n"
    )
    (root / "srv" / ".env").write_text("# config\nDB_PASSWORD=hunter2hunter2\n")
    (root / "srv" / "notes.env").write_text("PASSWORD=x\n")
    suid = root / "bin" / "ping"
    suid.write_bytes(b"")
    os.chmod(suid, 0o4755)  # noqa: S103 - the finding under test
    report = check_image(
        root, _image(), image_name="web", has_health_check=True, today=TODAY
    )
    assert {(f.check, f.path) for f in report.findings} == {
        ("shell", "/bin/busybox"),
        ("package-manager", "/bin/busybox"),
        ("shell", "/bin/sh"),
        ("tmp-mode", "/tmp"),
        ("private-key", "/srv/key.pem"),
        ("secret-file", "/srv/.env"),
        ("setuid", "/bin/ping"),
    }
    assert report.to_dict()["passed"] is False
    csf = {f.check: f.csf for f in report.findings}
    assert csf["setuid"] == "PR.AA-05"
    assert csf["private-key"] == "PR.DS-01"
