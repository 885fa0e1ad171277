"""One full drift check of an environment against its runtime.

This is the edge around :mod:`zerodrift.detect.nodes`: it reads every
container of the runtime once (inspect, writable-layer changes, processes,
and the files in the declared writable paths), the live-facts digests
recorded when apply created each node, and the desired state from the spec
and the image store, then hands everything to the pure comparison.

Files in writable paths live on tmpfs mounts, which the runtime's own diff
does not show; they are read from the host through ``/proc/PID/root`` of the
node's init process (the node's mount namespace), without entering the node
and without running anything inside it.

With ``image_content`` (the default), the content of every distinct image
the nodes use is also re-read from the runtime's storage and verified in
full against its signed golden manifest (:mod:`zerodrift.detect.content`).
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zerodrift._internal.canonical import canonical_digest
from zerodrift.detect.content import (
    ContentCheck,
    ImageUse,
    LayerReader,
    content_findings,
    layer_folders,
    trusted_golden,
    verify_images,
)
from zerodrift.detect.findings import Finding
from zerodrift.detect.manifest import GoldenManifest
from zerodrift.detect.nodes import (
    ObservedNode,
    WritableFile,
    environment_drift,
    writable_roots,
)
from zerodrift.errors import ConfigError, OperationalError
from zerodrift.oci.layout import Layout
from zerodrift.reconcile.journal import Journal
from zerodrift.runtime import firewall
from zerodrift.runtime._http import ApiError, quote_name
from zerodrift.runtime.backend import (
    LABEL_SERVICE,
    ActualNode,
)
from zerodrift.runtime.images import OciLayoutSource, ResolvedImage
from zerodrift.runtime.podman import live_facts
from zerodrift.state import utc_now

if TYPE_CHECKING:
    from zerodrift.reconcile.desired import DesiredService
    from zerodrift.reconcile.session import Session
    from zerodrift.runtime.podman import PodmanBackend

__all__ = [
    "CheckResult",
    "check_environment",
    "image_uses",
    "list_writable",
    "observe_node",
    "verify_content",
]

MAX_WRITABLE_FILES = 10_000
"""Files listed per node beyond its executables; a node holding more
non-executable files is reported as truncated."""

_HEAD = 4


@dataclass
class CheckResult:
    """The outcome of checking one environment.

    Attributes:
        environment: The environment checked.
        nodes: Containers examined.
        findings: Everything found.
        seconds: Wall time of the check.
        truncated: Nodes whose writable paths held more files than were listed
            (every executable is listed whatever their number).
        content: The verification of image content on disk, when it ran.
    """

    environment: str
    nodes: int
    findings: list[Finding]
    seconds: float
    truncated: list[str] = field(default_factory=list)
    content: ContentCheck | None = None

    def to_dict(self) -> dict[str, Any]:
        """Render as a JSON-ready dict."""
        return {
            "environment": self.environment,
            "nodes": self.nodes,
            "seconds": round(self.seconds, 3),
            "truncated": self.truncated,
            "image_content": self.content.to_dict() if self.content else None,
            "findings": [f.to_dict() for f in self.findings],
        }


def check_environment(
    session: Session,
    *,
    skip: Iterable[str] = (),
    image_content: bool = True,
    reader: LayerReader | None = None,
) -> CheckResult:
    """Run every node check of the session's environment once.

    Args:
        session: The environment's reconcile session (spec, store, runtime).
        skip: Node names not to report (already quarantined).
        image_content: Also verify the content of every image in use on disk.
        reader: Reads image layers (a fresh one rehashes everything).

    Raises:
        ConfigError: An image of the spec is missing from the store.
        OperationalError: The runtime or the database failed.
    """
    started = time.monotonic()
    desired = session.desired()
    by_service = {d.name: d for d in desired}
    recorded = Journal(session.db, session.environment).recorded_facts()
    backend = session.backend
    observed: list[ObservedNode] = []
    truncated: list[str] = []
    for node in backend.list_nodes():
        ours = session.owns(node)
        if node.managed and not ours:
            continue
        want = by_service.get(node.service or "") if ours else None
        try:
            item = observe_node(backend, node, want)
        except ApiError as exc:
            if exc.status in (404, 409) or not _exists(backend, node.name):
                continue  # removed or stopped since the listing
            raise
        if (
            item.writable_files is not None
            and len(item.writable_files) >= MAX_WRITABLE_FILES
        ):
            truncated.append(node.name)
        observed.append(item)
    findings = environment_drift(
        desired,
        observed,
        fleet=session.fleet.name,
        environment=session.environment,
        now=utc_now(),
        recorded=recorded,
        skip=skip,
    )
    content = None
    if image_content:
        content = verify_content(session, image_uses(session, observed), reader)
        findings += content_findings(
            content, environment=session.environment, now=utc_now()
        )
    return CheckResult(
        session.environment,
        len(observed),
        findings,
        time.monotonic() - started,
        truncated,
        content,
    )


def image_uses(session: Session, observed: Iterable[ObservedNode]) -> list[ImageUse]:
    """The distinct images the environment's managed nodes run, with their nodes."""
    images = {name: svc.image for name, svc in session.fleet.services.items()}
    found: dict[str, tuple[str, str, list[str], set[str]]] = {}
    for node in observed:
        service = node.labels.get(LABEL_SERVICE, "")
        digest = str(node.inspect.get("ImageDigest") or "")
        image_id = str(node.inspect.get("Image") or "")
        if not node.managed or service not in images or not digest or not image_id:
            continue
        _name, _id, nodes, services = found.setdefault(
            digest, (images[service], image_id, [], set())
        )
        nodes.append(node.name)
        services.add(service)
    return [
        ImageUse(name, digest, image_id, tuple(sorted(nodes)), tuple(sorted(services)))
        for digest, (name, image_id, nodes, services) in sorted(found.items())
    ]


def verify_content(
    session: Session, uses: Sequence[ImageUse], reader: LayerReader | None = None
) -> ContentCheck:
    """Verify each image in ``uses`` on disk against its trusted golden manifest.

    Raises:
        ConfigError: The session's images do not come from an image layout.
    """
    source = session.source
    if not isinstance(source, OciLayoutSource):
        raise ConfigError(
            "image content can only be verified against a local image store",
            hint="run check with --no-image-content",
            reference="image-store-missing",
        )
    layout = Layout.open(source.root)
    verifier = session.verifier

    def golden(use: ImageUse) -> tuple[GoldenManifest, bool]:
        image = ResolvedImage(use.name, use.digest)
        return trusted_golden(layout, image, verifier, session.environment)

    def folders(use: ImageUse) -> list[str]:
        return layer_folders(session.backend.client, use.image_id)

    return verify_images(uses, golden=golden, folders=folders, reader=reader)


def _exists(backend: PodmanBackend, name: str) -> bool:
    """Whether a container still exists (podman reports a removal race as 500)."""
    status, _ = backend.client.request(
        "GET", f"/containers/{quote_name(name)}/exists", ok=(404,)
    )
    return status != 404


def observe_node(
    backend: PodmanBackend, node: ActualNode, want: DesiredService | None
) -> ObservedNode:
    """Read what the comparison needs about one container.

    Unmanaged containers are only inspected; managed ones also give their
    writable-layer changes, processes and writable-path files.

    Raises:
        OperationalError: The runtime failed or the node vanished.
    """
    inspect = backend.inspect(node.name)
    if want is None:
        return ObservedNode(node.name, node.labels, node.state, inspect)
    running = node.state == "running"
    pid = int((inspect.get("State") or {}).get("Pid") or 0)
    live_rules = None
    checked = running and bool(want.config.get("flows"))
    if checked:
        live_rules, checked = _live_flow_rules(backend, node.name, inspect)
        live_rules = _as_declared(live_rules, want, inspect)
    return ObservedNode(
        name=node.name,
        labels=node.labels,
        state=node.state,
        inspect=inspect,
        changes=backend.changes(node.name),
        writable_files=list_writable(pid, writable_roots(want.config))
        if running and pid
        else None,
        processes=backend.processes(node.name) if running else None,
        facts_digest=canonical_digest(live_facts(inspect)),
        flow_rules=live_rules,
        flow_rules_read=checked,
    )


def _live_flow_rules(
    backend: PodmanBackend, name: str, inspect: dict[str, Any]
) -> tuple[str | None, bool]:
    """The node's live flow rules, and whether they could be read.

    Raises:
        OperationalError: The namespace of a node still running could not
            be read.
    """
    try:
        return firewall.installed(firewall.netns_path(inspect)), True
    except OperationalError:
        state = backend.inspect(name).get("State") or {}
        if state.get("Running"):
            raise
        return None, False  # stopped since: reported as not running


def _as_declared(
    live: str | None, want: DesiredService, inspect: dict[str, Any]
) -> str | None:
    """The declared table when ``live`` is that table as this host lists it.

    The declared table is written as nftables 1.0.6 lists it; when the live
    listing differs in text, the declared table is listed by this host's
    ``nft`` (:func:`~zerodrift.runtime.firewall.as_listed`) and compared
    again, so another nftables version's formatting is not reported as drift.
    """
    if live is None:
        return None
    try:
        declared = firewall.ruleset(
            want.config.get("flows") or {}, firewall.network_addresses(inspect)
        )
    except OperationalError:
        return live
    return declared if firewall.matches(declared, live) else live


def list_writable(
    pid: int, roots: Sequence[str], *, limit: int = MAX_WRITABLE_FILES
) -> list[WritableFile] | None:
    """List the regular files under ``roots`` as the process ``pid`` sees them.

    Every file is examined, so an executable cannot hide behind thousands
    of other files; only the listing of non-executable files stops at
    ``limit``.

    Returns:
        The files (every executable, and other files up to ``limit`` in
        all), or ``None`` when the node's root cannot be read from here (no
        permission, or the process is gone).
    """
    base = f"/proc/{pid}/root"
    if not os.access(base, os.R_OK | os.X_OK):
        return None
    found: list[WritableFile] = []
    for root in roots:
        top = base + root
        for folder, dirs, files in os.walk(top, followlinks=False):
            dirs.sort()
            for name in sorted(files):
                entry = _file(os.path.join(folder, name), len(base))
                if entry is not None and (len(found) < limit or entry.executable):
                    found.append(entry)
    return found


def _file(path: str, prefix: int) -> WritableFile | None:
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    head = b""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            head = os.read(fd, _HEAD)
        finally:
            os.close(fd)
    return WritableFile(path[prefix:], stat.S_IMODE(info.st_mode), info.st_size, head)
