"""The podman API service zerodrift starts for ``podman://`` (see ADR 0020).

``podman://`` asks zerodrift to start a private ``podman system service`` on
a socket in the project's state folder, with the ``containers.conf`` shipped
as package data (runc, cgroupfs, file events, VM-safe ulimits), and to stop
it when the command ends; containers keep running under their ``conmon``.
``podman:///path/to.sock`` names a service that is already running.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.resources
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from zerodrift._internal.atomic import write_atomic
from zerodrift.errors import ConfigError, OperationalError
from zerodrift.runtime._http import UnixClient

__all__ = ["PodmanService", "containers_conf_path", "parse_runtime_url"]

_PR_SET_PDEATHSIG = 1


def containers_conf_path() -> Path:
    """The ``containers.conf`` zerodrift ships for its private service."""
    resource = importlib.resources.files("zerodrift.runtime") / "data/containers.conf"
    return Path(str(resource))


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Ask the kernel to send SIGTERM when the parent process dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def parse_runtime_url(url: str) -> str | None:
    """Return the socket path of ``podman:///sock``, or ``None`` for ``podman://``.

    Raises:
        ConfigError: The URL is not a podman URL.
    """
    if not url.startswith("podman://"):
        raise ConfigError(
            f"runtime {url!r} is not supported by the podman backend",
            hint="use podman:// or podman:///path/to/podman.sock",
            reference="runtime-unsupported",
        )
    rest = url[len("podman://") :]
    if not rest:
        return None
    if not rest.startswith("/"):
        raise ConfigError(
            f"runtime {url!r}: a podman socket must be an absolute path",
            hint="podman:///run/podman/podman.sock (three slashes)",
            reference="runtime-unsupported",
        )
    return rest


@dataclass
class PodmanService:
    """A private ``podman system service`` started and stopped by zerodrift.

    Args:
        state_dir: Folder for the socket, logs and (optionally) storage.
        private_storage: Keep images and containers under ``state_dir``
            instead of the host's default storage.
    """

    state_dir: Path
    private_storage: bool = False
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        """The API socket of the service (one per zerodrift process)."""
        return self.state_dir / f"podman-{os.getpid()}.sock"

    def environment(self) -> dict[str, str]:
        """Environment variables that select zerodrift's podman configuration."""
        env = dict(os.environ)
        env["CONTAINERS_CONF"] = str(containers_conf_path())
        if self.private_storage:
            env["CONTAINERS_STORAGE_CONF"] = str(self._storage_conf())
            env["CONTAINERS_CONF"] = str(self._private_conf())
        return env

    def _private_conf(self) -> Path:
        """The shipped configuration plus a private network config folder."""
        path = self.state_dir / "containers.conf"
        text = (
            containers_conf_path()
            .read_text()
            .replace(
                "[network]\n",
                f'[network]\nnetwork_config_dir = "{self.state_dir / "networks"}"\n',
            )
            .replace("[engine]\n", f'[engine]\ntmp_dir = "{self.state_dir / "tmp"}"\n')
        )
        if not path.exists() or path.read_text() != text:
            write_atomic(path, text.encode())
        return path

    def _storage_conf(self) -> Path:
        path = self.state_dir / "storage.conf"
        storage = self.state_dir / "storage"
        text = (
            "# written by zerodrift: podman storage private to this project\n"
            '[storage]\ndriver = "overlay"\n'
            f'graphroot = "{storage / "graph"}"\nrunroot = "{storage / "run"}"\n'
        )
        if not path.exists() or path.read_text() != text:
            write_atomic(path, text.encode())
        return path

    def start(self, *, wait: float = 15.0) -> str:
        """Start the service and wait until it answers; return its socket.

        Raises:
            OperationalError: podman is not installed or does not start.
        """
        podman = shutil.which("podman")
        if podman is None:
            raise OperationalError(
                "podman is not installed",
                hint="apt-get install podman runc (zerodrift needs rootful podman)",
                reference="podman-missing",
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        log = (self.state_dir / "service.log").open("ab")
        self.process = subprocess.Popen(
            [podman, "system", "service", "--time=0", f"unix://{self.socket_path}"],
            env=self.environment(),
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            # Own session: Ctrl-C reaches zerodrift, which stops the service.
            start_new_session=True,
            # If zerodrift is killed, the kernel stops the service too.
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - started before any thread
        )
        log.close()
        client = UnixClient(str(self.socket_path), timeout=2)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise OperationalError(
                    f"podman system service exited with {self.process.returncode}",
                    hint=f"see {self.state_dir / 'service.log'}",
                    reference="podman-unreachable",
                )
            if self.socket_path.exists():
                with contextlib.suppress(OperationalError):
                    client.request("GET", "/_ping")
                    return str(self.socket_path)
            time.sleep(0.05)
        self.stop()
        raise OperationalError(
            f"podman system service did not answer within {wait:.0f} s",
            hint=f"see {self.state_dir / 'service.log'}",
            reference="podman-unreachable",
        )

    def stop(self) -> None:
        """Stop the service (its containers keep running)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
