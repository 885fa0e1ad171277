"""Fixtures of the runtime tests: one podman service and one image per session."""

from __future__ import annotations

import contextlib
import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.busybox_image import build_busybox_layout, install_store
from tests.support.podman import running_podman
from tests.support.unsafe_cli import unsafe
from zerodrift.errors import OperationalError
from zerodrift.reconcile.session import set_verifier_factory
from zerodrift.runtime.podman import PodmanBackend
from zerodrift.runtime.service import PodmanService

_fleets = itertools.count()

pytestmark = pytest.mark.podman


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed: run scripts/bootstrap --dev")


@pytest.fixture(scope="session")
def busybox_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OCI layout with busybox images tagged web, api, db and broken."""
    for tool in ("mmdebstrap", "umoci", "podman"):
        _need(tool)
    return build_busybox_layout(tmp_path_factory.mktemp("busybox"))


@pytest.fixture(scope="session")
def podman_service() -> Iterator[tuple[str, PodmanService]]:
    """A private podman API service (private storage and networks).

    The service object lets a test stop and start it again (same socket).
    """
    with running_podman() as (socket, service):
        yield socket, service


@pytest.fixture(scope="session")
def podman_socket(podman_service: tuple[str, PodmanService]) -> str:
    """The socket of the session's podman service."""
    return podman_service[0]


@pytest.fixture(autouse=True)
def _unsafe_verifier() -> Iterator[None]:
    previous = set_verifier_factory(unsafe)
    yield
    set_verifier_factory(previous)


@pytest.fixture
def backend(podman_socket: str) -> PodmanBackend:
    """A backend on the session's podman service."""
    return PodmanBackend(podman_socket)


@pytest.fixture
def rt_project(
    project: Path,
    busybox_layout: Path,
    podman_socket: str,
    backend: PodmanBackend,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Path]:
    """The example project with a unique fleet name, images in its store,
    the runtime pointed at the session's podman and the secrets set."""
    name = f"shop{next(_fleets)}"
    spec = project / "fleet.yaml"
    text = spec.read_text()
    text = text.replace("name: shop", f"name: {name}", 1)
    spec.write_text(text)
    install_store(
        busybox_layout,
        project / ".zerodrift" / "store",
        {"web": "web", "api": "api", "db": "db"},
    )
    monkeypatch.setenv("ZERODRIFT_RUNTIME", f"podman://{podman_socket}")
    monkeypatch.setenv("SHOP_API_TOKEN", "tok-SECRET-4f9a1c")
    monkeypatch.setenv("SHOP_DB_PASSWORD", "pw-SECRET-77d2e0")
    yield project
    for node in backend.list_nodes():
        if node.labels.get("io.zerodrift.fleet") == name or not node.managed:
            with contextlib.suppress(OperationalError):
                backend.destroy(node.name, timeout=0)
