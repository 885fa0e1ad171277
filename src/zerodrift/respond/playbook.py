"""The response playbook: replace, quarantine, keep evidence, destroy, verify.

For a drifted node the playbook

1. creates a healthy replacement first, through the reconciler (journalled,
   image verified, health-checked), so the service keeps its capacity;
2. quarantines the drifted node: disconnects its networks and pauses it;
3. captures evidence: the live inspect document, the changed files and the
   files in its writable paths as a tar archive, its process list, its
   recent logs and the findings; stores each content-addressed (SHA-256,
   fsynced) and appends a chain-of-custody record to the audit trail;
4. destroys the node, through the reconciler;
5. verifies that the replacement is healthy and shows no drift itself.

Each step is committed to the incident record before the next one starts, so
running the playbook again on an interrupted incident resumes after the last
completed step; evidence is captured before anything is destroyed.

Tampered image storage (``image-tampered``) cannot be answered by
replacing nodes, which would reuse the tampered layer:
:meth:`Responder.reload_images` removes the image from the runtime's
storage and redeploys it from the verified store instead.

Which findings call for a response, and how, is the service's ``response``
policy: ``auto`` runs the playbook at once, ``approve`` opens an incident
that waits for ``zerodrift respond NODE``, ``alert`` only reports.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import socket
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from zerodrift.detect.check import observe_node
from zerodrift.detect.content import SOURCE as IMAGE_FINDINGS
from zerodrift.detect.findings import (
    Finding,
    Severity,
    list_findings,
    record_findings,
    set_status,
)
from zerodrift.detect.nodes import RUNTIME_PATHS, node_drift, writable_roots
from zerodrift.errors import ConfigError, OperationalError
from zerodrift.reconcile.plan import Action
from zerodrift.respond.evidence import EvidenceStore, files_archive
from zerodrift.respond.incidents import (
    Incident,
    find_open,
    open_incident,
    recent_incidents,
    seconds_between,
    update_incident,
)
from zerodrift.runtime._http import ApiError
from zerodrift.runtime.backend import (
    LABEL_GENERATION,
    ActualNode,
)
from zerodrift.spec.resolve import resolve_services
from zerodrift.state import format_time, utc_now

if TYPE_CHECKING:
    from zerodrift.reconcile.desired import DesiredService
    from zerodrift.reconcile.session import Session

__all__ = ["RESPONDED_KINDS", "Responder", "answer_findings"]

RESPONDED_KINDS = frozenset(
    {
        "config-drift",
        "file-changed",
        "executable-added",
        "foreign-process",
        "unrecorded",
    }
)
"""Finding kinds that mean a node can no longer be trusted.

Missing, stopped, outdated and unmanaged nodes are apply's work, not an
incident's.
"""

MAX_EVIDENCE_FILE = 16 * 1024 * 1024
"""Bytes captured per file; larger files are listed with their size only."""

Record = Callable[[str, str, dict[str, Any]], object]
Progress = Callable[[str], None]


@dataclass
class Responder:
    """Runs the playbook in one environment.

    Args:
        session: The environment's reconcile session.
        store: The evidence store.
        record: Appends to the audit trail.
        progress: Receives one line per step, for people.
    """

    session: Session
    store: EvidenceStore
    record: Record
    progress: Progress = lambda _line: None

    def policy(self, service: str) -> str:
        """The response policy of ``service`` in this environment."""
        resolved = resolve_services(self.session.fleet, self.session.environment)
        return resolved[service].response if service in resolved else "alert"

    def open(self, node: str, findings: Sequence[Finding], *, status: str) -> Incident:
        """Open (or find) the incident of ``node`` with ``status``."""
        actual = self._node(node)
        service = actual.service or ""
        incident = open_incident(
            self.session.db,
            environment=self.session.environment,
            service=service,
            node=node,
            policy=self.policy(service),
            findings=[f.to_dict() for f in findings] or self._stored_findings(node),
            status=status,
        )
        # The incident now answers for its findings: they count as analysed
        # from the moment it opened.
        set_status(
            self.session.db,
            [f["id"] for f in incident.findings if f.get("id")],
            "open",
            incident=incident.id,
        )
        self.record(
            "incident.opened",
            node,
            {
                "incident": incident.id,
                "status": incident.status,
                "findings": [f["id"] for f in incident.findings],
            },
        )
        return incident

    def breaker_open(self, service: str) -> bool:
        """Whether ``service`` drifted too often to replace it again now."""
        env = self.session.fleet.environments[self.session.environment]
        limit = env.circuit_breaker
        since = format_time(datetime.now(UTC) - timedelta(seconds=limit.window))
        count = recent_incidents(
            self.session.db, self.session.environment, service, since
        )
        return count >= limit.drifts

    def hold(self, node: str, findings: Sequence[Finding]) -> Incident:
        """Open the circuit breaker for ``node``.

        The node is quarantined and its evidence kept, but it is not replaced;
        a critical finding says so. ``respond`` on it later replaces it.
        """
        incident = self.open(node, findings, status="circuit-open")
        want = self._desired(incident.service)
        db = self.session.db
        limit = self.session.fleet.environments[
            self.session.environment
        ].circuit_breaker
        self._quarantine(incident)
        digest, _earliest = self._capture(incident, want)
        update_incident(db, incident, step="evidence", evidence=digest)
        alarm = Finding(
            source="node",
            kind="circuit-open",
            severity=Severity.CRITICAL,
            subject=f"service:{incident.service}",
            summary=f"service {incident.service} drifted {limit.drifts} times "
            f"within {limit.window} s: replacement stopped, {node} kept "
            "quarantined for analysis",
            found_at=utc_now(),
            details={"incident": incident.id, "node": node, "evidence": digest},
            csf=("DE.AE-02", "DE.AE-08", "RS.MA-01"),
            environment=self.session.environment,
        )
        [alarm] = record_findings(db, [alarm]).findings
        self.record(
            "incident.circuit-open",
            node,
            {"incident": incident.id, "finding": alarm.id, "evidence": digest},
        )
        self.progress(
            f"[{node}] circuit breaker open: kept quarantined, not replaced "
            f"(zerodrift respond {node} replaces it)"
        )
        return incident

    def respond(self, node: str, findings: Sequence[Finding] = ()) -> Incident:
        """Run (or resume) the playbook for ``node``; return the incident.

        Args:
            node: The drifted node.
            findings: What was found; for a manual response these may be
                empty (a person decided).

        Raises:
            ConfigError: ``node`` is not a node of this environment.
            OperationalError: A step failed; the incident records which.
        """
        tampered = self.tampered_images(node=node)
        if tampered:
            # Replacing the node would reuse the tampered layer: the image
            # is answered as a whole, this node with the others using it.
            answered = self.reload_images(tampered)
            mine = [i for i in answered if i.node == node] or answered
            if not mine:
                raise ConfigError(
                    f"{node} is gone; its tampered image was reloaded",
                    hint="zerodrift incidents lists what was answered",
                    reference="respond-node-gone",
                )
            return mine[0]
        incident = find_open(self.session.db, node) or self.open(
            node, findings, status="responding"
        )
        if incident.status in ("awaiting-approval", "circuit-open"):
            incident = update_incident(self.session.db, incident, status="responding")
            self.record(
                "incident.approved",
                node,
                {"incident": incident.id, "by": _actor()},
            )
        want = self._desired(incident.service)
        try:
            self._run(incident, want)
        except Exception as exc:
            message = getattr(exc, "message", str(exc))
            update_incident(
                self.session.db,
                incident,
                status="failed",
                detail={**incident.detail, "error": message[:500]},
            )
            self.record(
                "incident.failed",
                node,
                {"incident": incident.id, "step": incident.step, "error": message},
            )
            raise
        return incident

    # --- the steps ----------------------------------------------------------

    def _run(self, incident: Incident, want: DesiredService) -> None:
        db = self.session.db
        node = incident.node
        if incident.replacement is None:
            # A held incident (circuit breaker) is quarantined, not replaced.
            replacement = self._replace(incident, want)
            step = incident.step if incident.done("replaced") else "replaced"
            update_incident(db, incident, step=step, replacement=replacement)
            self.progress(f"[{node}] replacement {replacement} is healthy")
        if not incident.done("quarantined"):
            self._quarantine(incident)
        if not incident.done("evidence"):
            digest, earliest = self._capture(incident, want)
            ttd = None
            if earliest is not None:
                ttd = max(0.0, seconds_between(earliest, incident.detected_at))
            update_incident(
                db, incident, step="evidence", evidence=digest, ttd_seconds=ttd
            )
            self.progress(f"[{node}] evidence {digest[:19]}… stored")
        if not incident.done("destroyed"):
            result = self.session.execute(
                [Action("destroy", want.name, "drifted", node)],
                kind="respond",
                progress=self.progress,
            )
            if not result.ok:
                raise OperationalError(
                    f"could not destroy {node}: {'; '.join(result.failures)}",
                    reference="respond-destroy-failed",
                )
            update_incident(db, incident, step="destroyed")
            self.progress(f"[{node}] destroyed")
        if not incident.done("verified"):
            self._verify(incident, want)
            self._resolve(incident)

    def _resolve(self, incident: Incident, **changes: Any) -> None:
        """Close a verified incident and the findings it answered."""
        db = self.session.db
        resolved = utc_now()
        update_incident(
            db,
            incident,
            step="verified",
            status="resolved",
            resolved_at=resolved,
            ttr_seconds=seconds_between(incident.detected_at, resolved),
            **changes,
        )
        set_status(
            db,
            [f["id"] for f in incident.findings],
            "resolved",
            at=resolved,
            incident=incident.id,
        )
        self.record(
            "incident.resolved",
            incident.node,
            {
                "incident": incident.id,
                "replacement": incident.replacement,
                "evidence": incident.evidence,
                "ttr_seconds": incident.ttr_seconds,
            },
        )

    def _quarantine(self, incident: Incident) -> None:
        db = self.session.db
        backend = self.session.backend
        node = incident.node
        # Paused processes cannot be listed: keep the list from just
        # before the pause (stored at once, so a crash cannot lose it).
        processes = _json(_or_error(lambda: [vars(p) for p in backend.processes(node)]))
        update_incident(
            db,
            incident,
            detail={**incident.detail, "processes": self.store.put(processes)},
        )
        with _gone_is_fine():
            backend.quarantine(node)
        update_incident(db, incident, step="quarantined")
        self.record("incident.quarantined", node, {"incident": incident.id})
        self.progress(f"[{node}] quarantined: networks cut, processes paused")

    def _replace(self, incident: Incident, want: DesiredService) -> str:
        actual = self._node(incident.node)
        generation = actual.labels.get(LABEL_GENERATION, "1")
        result = self.session.execute(
            [
                Action(
                    "create",
                    want.name,
                    "drifted",
                    None,
                    want.identity,
                    want.image_digest,
                    None,
                    int(generation) if generation.isdigit() else 1,
                )
            ],
            kind="respond",
            progress=self.progress,
        )
        if not result.ok or not result.created:
            raise OperationalError(
                f"no healthy replacement for {incident.node}: "
                + "; ".join(result.failures),
                hint="the drifted node is left running; fix the cause and run "
                f"zerodrift respond {incident.node} again",
                reference="respond-replacement-failed",
            )
        return result.created[0]

    def _capture(
        self, incident: Incident, want: DesiredService
    ) -> tuple[str, str | None]:
        """Store the evidence.

        Returns:
            The manifest digest, and the earliest modification time among the
            captured files (database format), when there were any.
        """
        backend = self.session.backend
        node = incident.node
        items: dict[str, bytes] = {
            "findings.json": _json(incident.findings),
        }
        earliest: float | None = None
        try:
            inspect = backend.inspect(node)
        except ApiError as exc:
            if exc.status != 404:
                raise
            inspect = {}
            items["missing.txt"] = b"the node was gone before evidence was captured"
        if inspect:
            items["inspect.json"] = _json(inspect)
            listed = incident.detail.get("processes")
            items["processes.json"] = (
                self.store.get(listed)
                if listed
                else _json(
                    _or_error(lambda: [vars(p) for p in backend.processes(node)])
                )
            )
            items["logs.txt"] = _or_error_bytes(lambda: backend.logs(node))
            changes = _or_error(lambda: [vars(c) for c in backend.changes(node)])
            items["changes.json"] = _json(changes)
            pid = int((inspect.get("State") or {}).get("Pid") or 0)
            paths = [
                c["path"]
                for c in changes
                if isinstance(c, dict)
                and c["kind"] != "deleted"
                and c["path"] not in RUNTIME_PATHS
            ]
            files, listing, earliest = _collect(pid, paths, writable_roots(want.config))
            items["files.tar"] = files_archive(files)
            items["files.json"] = _json(listing)
        digest = self.store.put_manifest(incident.id, items)
        custody = {
            "incident": incident.id,
            "manifest": digest,
            "items": {
                name: "sha256:" + _sha256(data) for name, data in sorted(items.items())
            },
            "collected_by": _actor(),
            "host": socket.gethostname(),
            "store": str(self.store.root),
        }
        self.record("evidence.captured", node, custody)
        change = (
            format_time(datetime.fromtimestamp(earliest, UTC))
            if earliest is not None
            else None
        )
        return digest, change

    def _verify(self, incident: Incident, want: DesiredService) -> None:
        backend = self.session.backend
        name = incident.replacement or ""
        health = want.config.get("health")
        if health:
            outcome = backend.probe(name, health)
            if not outcome.healthy:
                raise OperationalError(
                    f"replacement {name} is not healthy: {outcome.detail}",
                    reference="respond-replacement-unhealthy",
                )
        observed = observe_node(backend, backend.node(name), want)
        found = [
            f
            for f in node_drift(want, observed, now=utc_now(), recorded=None)
            if f.kind in RESPONDED_KINDS
        ]
        if found:
            raise OperationalError(
                f"replacement {name} drifted too: "
                + "; ".join(f.summary for f in found),
                hint="the image itself may be compromised: verify it",
                reference="respond-replacement-drifted",
            )
        self.progress(f"[{incident.node}] replacement {name} verified clean")

    # --- tampered image storage --------------------------------------------

    def reload_images(self, findings: Sequence[Finding]) -> list[Incident]:
        """Answer tampered image storage: evidence, removal, reload, redeploy.

        Replacing a node would reuse the tampered layer, so for the nodes of
        every image in ``findings`` (``image-tampered``): each is quarantined
        and its evidence captured (one incident per node, as for any drifted
        node); the nodes are destroyed; the images, and every unused image
        sharing a layer with them, are removed from the runtime's storage;
        ``apply`` then reloads the images from the verified store and
        recreates the nodes; and the images' content on disk is verified
        again before the incidents are resolved.

        Run again with the same findings (:meth:`tampered_images` reads
        them back), it resumes: incidents whose node is already gone skip to
        the removal of the images.

        Raises:
            OperationalError: A step failed (an image still used by other
                containers, a failed apply, content still differing); the
                incidents stay open and say which step they reached.
        """
        from zerodrift.detect.check import check_environment

        db = self.session.db
        incidents = self._hold_image_nodes(findings)
        destroy = [
            Action("destroy", i.service, "image-tampered", i.node)
            for i in incidents
            if not i.done("destroyed") and self._exists(i.node)
        ]
        if destroy:
            result = self.session.execute(
                destroy, kind="respond", progress=self.progress
            )
            if not result.ok:
                raise OperationalError(
                    "could not destroy the nodes of the tampered image: "
                    + "; ".join(result.failures),
                    reference="respond-destroy-failed",
                )
        for incident in incidents:
            update_incident(db, incident, step="destroyed")
        folders = {str(p) for f in findings for p in f.details.get("layers", [])}
        removed = self.session.backend.remove_images_sharing(folders)
        self.record(
            "image.purged",
            self.session.environment,
            {
                "images": sorted({str(f.details.get("digest")) for f in findings}),
                "removed": removed,
                "incidents": [i.id for i in incidents],
            },
        )
        self.progress(f"removed {len(removed)} image(s) from the runtime's storage")
        _plan, applied = self.session.apply(kind="respond", progress=self.progress)
        if not applied.ok:
            raise OperationalError(
                "apply after reloading the images failed: "
                + "; ".join(applied.failures),
                reference="respond-apply-failed",
            )
        digests = {f.details.get("digest") for f in findings}
        again = [
            f
            for f in check_environment(self.session).findings
            if f.details.get("digest") in digests
        ]
        if again:
            raise OperationalError(
                "image content still differs after the reload: "
                + "; ".join(f.summary for f in again),
                hint="the image store itself may be damaged: zerodrift verify",
                reference="respond-image-still-tampered",
            )
        created = list(applied.created)
        for incident in incidents:
            replacement = next(
                (n for n in created if self._service_of(n) == incident.service), None
            )
            if replacement is not None:
                created.remove(replacement)
            self._resolve(incident, replacement=replacement)
            self.progress(f"[{incident.node}] replaced by {replacement}")
        return incidents

    def _hold_image_nodes(self, findings: Sequence[Finding]) -> list[Incident]:
        """Quarantine each node of the images and capture its evidence."""
        db = self.session.db
        incidents: list[Incident] = []
        seen: set[str] = set()
        for finding in findings:
            for node in finding.details.get("nodes", []):
                if node in seen:
                    continue
                seen.add(node)
                incident = find_open(db, node)
                if not self._exists(node):
                    # Gone since the check; an interrupted response already
                    # captured its evidence and goes on from there.
                    if incident is not None and incident.done("evidence"):
                        incidents.append(incident)
                    continue
                if incident is None:
                    incident = self.open(node, [finding], status="responding")
                if incident.status != "responding":
                    if incident.status == "awaiting-approval":
                        self.record(
                            "incident.approved",
                            node,
                            {"incident": incident.id, "by": _actor()},
                        )
                    incident = update_incident(db, incident, status="responding")
                want = self._desired(incident.service)
                if not incident.done("quarantined"):
                    self._quarantine(incident)
                if not incident.done("evidence"):
                    digest, _earliest = self._capture(incident, want)
                    update_incident(db, incident, step="evidence", evidence=digest)
                incidents.append(incident)
        return incidents

    def tampered_images(
        self, *, node: str | None = None, image: str | None = None
    ) -> list[Finding]:
        """Open ``image-tampered`` findings of this environment, as stored.

        Images whose layers a chosen one shares come along: a shared layer
        leaves the storage only with the last image using it, so they are
        answered together.

        Args:
            node: Only those of images this node runs.
            image: Only those of this image (its name, or a digest or
                digest prefix).
        """
        stored = [
            Finding.from_stored(row)
            for row in list_findings(
                self.session.db,
                source=IMAGE_FINDINGS,
                status="open",
                environment=self.session.environment,
            )
            if row["kind"] == "image-tampered"
        ]
        chosen = [f for f in stored if _about(f, node=node, image=image)]
        layers = {str(p) for f in chosen for p in f.details.get("layers", [])}
        while True:
            more = [
                f
                for f in stored
                if f not in chosen and layers & set(f.details.get("layers", []))
            ]
            if not more:
                return chosen
            chosen += more
            layers |= {str(p) for f in more for p in f.details.get("layers", [])}

    def await_approval(self, findings: Sequence[Finding]) -> list[Incident]:
        """Open an incident awaiting approval for each node of the images.

        Approving any of them (``zerodrift respond NODE``, or ``respond
        --image``) answers the whole image with :meth:`reload_images`.
        """
        incidents = []
        for finding in findings:
            for node in finding.details.get("nodes", []):
                if not self._exists(node):
                    continue
                incidents.append(
                    find_open(self.session.db, node)
                    or self.open(node, [finding], status="awaiting-approval")
                )
        return incidents

    def _exists(self, name: str) -> bool:
        try:
            self._node(name)
        except ConfigError:
            return False
        return True

    def _service_of(self, name: str) -> str | None:
        with contextlib.suppress(ApiError):
            return self.session.backend.node(name).service
        return None

    # --- helpers ------------------------------------------------------------

    def _stored_findings(self, node: str) -> list[dict[str, Any]]:
        """The open findings stored about ``node`` (for a manual response)."""
        return [
            {key: value for key, value in item.items() if key != "status"}
            for item in list_findings(self.session.db, source="node", status="open")
            if item["subject"] == node and item["kind"] in RESPONDED_KINDS
        ]

    def _node(self, name: str) -> ActualNode:
        try:
            actual = self.session.backend.node(name)
        except ApiError as exc:
            if exc.status != 404:
                raise
            actual = None
        if actual is None or not self.session.owns(actual):
            raise ConfigError(
                f"{name!r} is not a node of environment {self.session.environment!r}",
                hint="list nodes with zerodrift inventory --env "
                f"{self.session.environment}",
                reference="node-unknown",
            )
        return actual

    def _desired(self, service: str) -> DesiredService:
        for want in self.session.desired():
            if want.name == service:
                return want
        raise ConfigError(
            f"service {service!r} is no longer in the spec",
            hint="apply --prune removes its nodes",
            reference="service-removed",
        )


def answer_findings(
    responder: Responder, findings: Iterable[Finding]
) -> list[Incident]:
    """Apply each drifted node's response policy to what was found.

    ``auto`` runs the playbook, ``approve`` opens an incident awaiting
    approval, ``alert`` does nothing beyond the findings already reported.
    Tampered image storage is answered by :meth:`Responder.reload_images`
    when every service using the images is ``auto``.
    """
    findings = list(findings)
    incidents = _answer_images(responder, findings)
    by_node: dict[str, list[Finding]] = {}
    for finding in findings:
        if finding.kind in RESPONDED_KINDS:
            by_node.setdefault(finding.subject, []).append(finding)
    for node, found in sorted(by_node.items()):
        service = str(found[0].details.get("service", ""))
        policy = responder.policy(service)
        if policy == "auto":
            existing = find_open(responder.session.db, node)
            if existing is None and responder.breaker_open(service):
                incidents.append(responder.hold(node, found))
            elif existing is None or existing.status != "circuit-open":
                incidents.append(responder.respond(node, found))
        elif policy == "approve":
            existing = find_open(responder.session.db, node)
            incidents.append(
                existing or responder.open(node, found, status="awaiting-approval")
            )
    return incidents


def _collect(
    pid: int, changed: Sequence[str], roots: Sequence[str]
) -> tuple[list[tuple[str, bytes, int]], list[dict[str, Any]], float | None]:
    """Read changed files and writable-path files as the node sees them."""
    base = f"/proc/{pid}/root"
    paths = set(changed)
    if pid and os.access(base, os.R_OK | os.X_OK):
        for root in roots:
            for folder, _dirs, names in os.walk(base + root, followlinks=False):
                paths.update(os.path.join(folder, n)[len(base) :] for n in names)
    files: list[tuple[str, bytes, int]] = []
    listing: list[dict[str, Any]] = []
    earliest: float | None = None
    for path in sorted(paths):
        try:
            info = os.lstat(base + path)
        except OSError as exc:
            listing.append({"path": path, "error": exc.strerror})
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        mode = stat.S_IMODE(info.st_mode)
        entry: dict[str, Any] = {
            "path": path,
            "mode": f"{mode:04o}",
            "size": info.st_size,
            "mtime": info.st_mtime,
        }
        earliest = info.st_mtime if earliest is None else min(earliest, info.st_mtime)
        if info.st_size <= MAX_EVIDENCE_FILE:
            try:
                fd = os.open(base + path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                try:
                    data = os.read(fd, MAX_EVIDENCE_FILE)
                finally:
                    os.close(fd)
                files.append((path, data, mode))
                entry["sha256"] = _sha256(data)
            except OSError as exc:
                entry["error"] = exc.strerror
        else:
            entry["skipped"] = "larger than the evidence limit"
        listing.append(entry)
    return files, listing, earliest


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=1, sort_keys=True, default=str).encode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _or_error(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except OperationalError as exc:
        return {"error": exc.message}


def _or_error_bytes(read: Callable[[], bytes]) -> bytes:
    try:
        return read()
    except OperationalError as exc:
        return f"error: {exc.message}".encode()


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


@contextlib.contextmanager
def _gone_is_fine() -> Iterator[None]:
    try:
        yield
    except ApiError as exc:
        if exc.status != 404:
            raise


def _about(finding: Finding, *, node: str | None, image: str | None) -> bool:
    """Whether an image finding is about ``node`` and ``image`` (if given)."""
    details = finding.details
    if node is not None and node not in details.get("nodes", []):
        return False
    return image is None or (
        details.get("image") == image
        or str(details.get("digest", "")).startswith(image)
    )


def _answer_images(responder: Responder, findings: Sequence[Finding]) -> list[Incident]:
    """Answer tampered images as the policies of the services using them say.

    Every service ``auto``: reload now. Some ``approve`` (none ``alert``): an
    incident awaits approval on each node. Any ``alert``: only reported.

    All tampered images are answered together: they may share the tampered
    layer, which leaves the storage only with the last image using it.
    """
    tampered = [f for f in findings if f.kind == "image-tampered"]
    services = {str(s) for f in tampered for s in f.details.get("services", [])}
    if not tampered:
        return []
    policies = {responder.policy(s) for s in services}
    if policies <= {"auto"}:
        return responder.reload_images(tampered)
    if policies <= {"auto", "approve"}:
        responder.progress(
            "tampered image storage awaits approval: zerodrift respond NODE "
            "(any node of the image) or zerodrift respond --image IMAGE"
        )
        return responder.await_approval(tampered)
    responder.progress(
        "tampered image storage is only reported: some of "
        f"{sorted(services)} have policy 'alert' (zerodrift respond --image "
        "IMAGE answers it)"
    )
    return []
