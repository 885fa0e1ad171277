"""A real OCI registry for tests: Debian's ``docker-registry`` (distribution 2.8).

Each registry gets a private folder with its own configuration and storage,
listens on a free loopback port, and runs as the unprivileged user ``nobody``
when the tests run as root. Debian's shipped configuration enables an auth
scheme that does not work, so the configuration is written here. With
``htpasswd`` set, the registry asks for HTTP basic authentication; with
``tls`` set, it serves HTTPS with a throwaway self-signed certificate (its
path is :attr:`Registry.ca_file`).

Distribution 2.8 predates OCI 1.1: it has no referrers API, so clients fall
back to the tag schema (``sha256-<hex>`` indexes) there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

USER = "nobody"


@dataclass(frozen=True)
class Registry:
    """A running registry: where it listens and how to reach it."""

    host: str
    port: int
    folder: Path
    ca_file: Path | None = None
    username: str | None = None
    password: str | None = None

    @property
    def address(self) -> str:
        """``host:port``."""
        return f"{self.host}:{self.port}"

    def url(self, repository: str) -> str:
        """A ``registry://`` URL for ``repository`` on this registry."""
        return f"registry://{self.address}/{repository}"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(storage: Path, port: int, htpasswd: Path | None, tls: Path | None) -> str:
    lines = [
        "version: 0.1",
        "log:",
        "  level: warn",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {storage}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: 127.0.0.1:{port}",
    ]
    if tls is not None:
        lines += [
            "  tls:",
            f"    certificate: {tls / 'cert.pem'}",
            f"    key: {tls / 'key.pem'}",
        ]
    if htpasswd is not None:
        lines += [
            "auth:",
            "  htpasswd:",
            "    realm: zerodrift-test",
            f"    path: {htpasswd}",
        ]
    return "\n".join(lines) + "\n"


def _self_signed(folder: Path) -> None:
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip


def _wait_ready(registry: Registry, process: subprocess.Popen[bytes]) -> None:
    scheme = "https" if registry.ca_file else "http"
    context = (
        ssl.create_default_context(cafile=str(registry.ca_file))
        if registry.ca_file
        else None
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited with {process.returncode}")
        try:
            urllib.request.urlopen(  # noqa: S310 - a fixed loopback URL
                f"{scheme}://{registry.address}/v2/", timeout=1, context=context
            )
            return
        except urllib.error.HTTPError as exc:
            if exc.code == 401:  # up, and asking for credentials
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("docker-registry did not answer on /v2/ within 20 s")


@contextlib.contextmanager
def running_registry(
    *, username: str | None = None, password: str | None = None, tls: bool = False
) -> Iterator[Registry]:
    """Start a throwaway registry; stop it and remove its storage afterwards."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RuntimeError("docker-registry is not installed (scripts/bootstrap)")
    folder = Path(tempfile.mkdtemp(prefix="zd-registry-", dir="/tmp"))
    folder.chmod(0o755)
    storage = folder / "storage"
    storage.mkdir()
    htpasswd = None
    if username is not None:
        htpasswd = folder / "htpasswd"
        subprocess.run(
            ["htpasswd", "-Bbc", str(htpasswd), username, password or ""],
            check=True,
            capture_output=True,
        )
        htpasswd.chmod(0o644)
    tls_dir = None
    if tls:
        tls_dir = folder / "tls"
        tls_dir.mkdir()
        _self_signed(tls_dir)
        for item in tls_dir.iterdir():
            item.chmod(0o644)
    port = free_port()
    config = folder / "config.yml"
    config.write_text(_config(storage, port, htpasswd, tls_dir))
    command = [binary, "serve", str(config)]
    if os.getuid() == 0:
        shutil.chown(storage, USER)
        command = ["setpriv", "--reuid", USER, "--regid", "nogroup", "--clear-groups",
                   *command]  # fmt: skip
    log = (folder / "registry.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    registry = Registry(
        "127.0.0.1",
        port,
        folder,
        tls_dir / "cert.pem" if tls_dir else None,
        username,
        password,
    )
    try:
        _wait_ready(registry, process)
        yield registry
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)
