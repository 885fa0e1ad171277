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

import base64
import contextlib
import datetime
import http.server
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

USER = "nobody"
TOKEN_SERVICE = "zerodrift-test-registry"
TOKEN_ISSUER = "zerodrift-test-issuer"


class TokenIssuer:
    """A stand-in token service for the Docker token protocol (named as such).

    Registries such as Docker Hub, GHCR and Harbor delegate authentication to
    a separate token service; none is packaged for Debian, so this small one
    plays its part: it checks HTTP basic credentials and returns a JWT
    (ES256, certificate chain in ``x5c``) granting the requested scope. The
    registry itself, which validates the token, is the real docker-registry.
    """

    def __init__(self, folder: Path, username: str, password: str) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TOKEN_ISSUER)])
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(self._key, hashes.SHA256())
        )
        self.cert_file = folder / "token-cert.pem"
        self.cert_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        self.cert_file.chmod(0o644)
        self._account = (username, password)
        self.issued = 0
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                issuer._answer(self)

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self._server.server_address[1]}/token"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        expected = (
            "Basic " + base64.b64encode(":".join(self._account).encode()).decode()
        )
        if handler.headers.get("Authorization") != expected:
            handler.send_response(401)
            handler.end_headers()
            return
        query = urllib.parse.parse_qs(urllib.parse.urlparse(handler.path).query)
        access: list[dict[str, object]] = []
        for scope in query.get("scope", []):
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        body = json.dumps({"token": self._jwt(access)}).encode()
        self.issued += 1
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _jwt(self, access: list[dict[str, object]]) -> str:
        now = int(time.time())
        der = self._cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(der).decode()]}
        claims = {
            "iss": TOKEN_ISSUER,
            "sub": self._account[0],
            "aud": TOKEN_SERVICE,
            "exp": now + 600,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = (
            _b64url(json.dumps(header).encode())
            + "."
            + _b64url(json.dumps(claims).encode())
        )
        r, s = decode_dss_signature(
            self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        )
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return signing_input + "." + _b64url(signature)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


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


def _config(
    storage: Path,
    port: int,
    htpasswd: Path | None,
    tls: Path | None,
    token: TokenIssuer | None,
) -> str:
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
    elif token is not None:
        lines += [
            "auth:",
            "  token:",
            f"    realm: {token.realm}",
            f"    service: {TOKEN_SERVICE}",
            f"    issuer: {TOKEN_ISSUER}",
            f"    rootcertbundle: {token.cert_file}",
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
    *,
    username: str | None = None,
    password: str | None = None,
    tls: bool = False,
    token_auth: bool = False,
) -> Iterator[Registry]:
    """Start a throwaway registry; stop it and remove its storage afterwards.

    Args:
        username: With ``password``, the one account (htpasswd, or the token
            issuer's account with ``token_auth``).
        password: That account's password.
        tls: Serve HTTPS with a self-signed certificate.
        token_auth: Use the Docker token protocol, with :class:`TokenIssuer`.
    """
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RuntimeError("docker-registry is not installed (scripts/bootstrap)")
    folder = Path(tempfile.mkdtemp(prefix="zd-registry-", dir="/tmp"))
    folder.chmod(0o755)
    storage = folder / "storage"
    storage.mkdir()
    htpasswd = None
    issuer = None
    if token_auth:
        issuer = TokenIssuer(folder, username or "", password or "")
    elif username is not None:
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
    config.write_text(_config(storage, port, htpasswd, tls_dir, issuer))
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
        if issuer is not None:
            issuer.stop()
        shutil.rmtree(folder, ignore_errors=True)
