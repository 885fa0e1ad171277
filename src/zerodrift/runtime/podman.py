"""The Podman backend: hardened nodes through podman's libpod REST API.

The backend talks to a socket named by the environment's ``podman:///...``
URL, or to a private service it starts for ``podman://``
(:class:`~zerodrift.runtime.service.PodmanService`).

Every node is created with the hardened settings of ADR 0021: the image
pinned by digest, a read-only root, tmpfs only on declared writable paths,
named volumes for declared volumes, all capabilities dropped except declared
ones, no-new-privileges, a non-root user, never privileged, resource limits,
secrets from podman's secret store, and only the networks of its data flows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from zerodrift._internal.canonical import canonical_digest
from zerodrift.errors import IntegrityError, OperationalError
from zerodrift.runtime import firewall
from zerodrift.runtime._http import ApiError, UnixClient, quote_name
from zerodrift.runtime._netns import probe_in_netns
from zerodrift.runtime._spec import LABEL_SECRET_ENV, spec_generator
from zerodrift.runtime.backend import (
    LABEL_ENVIRONMENT,
    LABEL_FLEET,
    LABEL_MANAGED,
    ActualNode,
    FileChange,
    HealthResult,
    NodeEvent,
    NodeSpec,
    NodeState,
    ProcessInfo,
)
from zerodrift.runtime.service import (
    PodmanService,
    containers_conf_path,
    parse_runtime_url,
)

__all__ = [
    "PodmanBackend",
    "PodmanService",
    "containers_conf_path",
    "live_facts",
    "parse_runtime_url",
]

_logger = logging.getLogger(__name__)

_SECRET_PREFIX = "zd."  # noqa: S105 - a name prefix, not a secret
_CHANGE_KINDS: dict[int, Literal["changed", "added", "deleted"]] = {
    0: "changed",
    1: "added",
    2: "deleted",
}
_STATES: dict[str, NodeState] = {
    "created": "created",
    "configured": "created",
    "initialized": "created",
    "running": "running",
    "paused": "paused",
    "exited": "exited",
    "stopped": "exited",
    "stopping": "exited",
    "dead": "exited",
    "removing": "exited",
}


def live_facts(inspect: Mapping[str, Any]) -> dict[str, Any]:
    """The security-relevant live settings of a container, from its inspect data.

    Zerodrift records the digest of these facts in a label when it creates a
    node; the runtime cannot change labels in place, so a later difference
    means someone changed the node behind zerodrift's back (drift).
    """
    host = inspect.get("HostConfig") or {}
    config = inspect.get("Config") or {}
    networks = (inspect.get("NetworkSettings") or {}).get("Networks") or {}
    mounts = sorted(
        f"{m.get('Type')}:{m.get('Destination')}:{'rw' if m.get('RW') else 'ro'}"
        for m in inspect.get("Mounts") or []
    )
    return {
        "image": inspect.get("Image"),
        "user": config.get("User"),
        "read_only": bool(host.get("ReadonlyRootfs")),
        "privileged": bool(host.get("Privileged")),
        "capabilities": sorted(inspect.get("BoundingCaps") or []),
        "security_opt": sorted(host.get("SecurityOpt") or []),
        "memory": host.get("Memory") or 0,
        "cpu_quota": host.get("CpuQuota") or 0,
        "pids": host.get("PidsLimit") or 0,
        "networks": sorted(networks),
        "network_mode": host.get("NetworkMode"),
        "mounts": mounts,
        "tmpfs": sorted(host.get("Tmpfs") or {}),
        "published": sorted(host.get("PortBindings") or {}),
    }


class PodmanBackend:
    """:class:`~zerodrift.runtime.backend.RuntimeBackend` over podman's API.

    Args:
        socket_path: The podman API socket.
        service: The private service this backend started, stopped by
            :meth:`close`.
    """

    def __init__(self, socket_path: str, service: PodmanService | None = None) -> None:
        self.client = UnixClient(socket_path)
        self.service = service
        self._networks: set[str] = set()

    @classmethod
    def connect(
        cls, url: str, state_dir: Path, *, private_storage: bool = False
    ) -> PodmanBackend:
        """Open the backend for a ``podman://`` URL, starting a service if needed.

        Raises:
            ConfigError: The URL is not a podman URL.
            OperationalError: podman is missing or its socket unreachable.
        """
        socket_path = parse_runtime_url(url)
        if socket_path is not None:
            backend = cls(socket_path)
            backend.ping()
            return backend
        service = PodmanService(state_dir, private_storage=private_storage)
        return cls(service.start(), service)

    def close(self) -> None:
        """Stop the private service, if this backend started one."""
        if self.service is not None:
            self.service.stop()

    # --- protocol ---------------------------------------------------------

    def ping(self) -> None:
        """Check that podman answers.

        Raises:
            OperationalError: The socket is unreachable.
        """
        self.client.request("GET", "/_ping", timeout=5)

    def list_nodes(self, environment: str | None = None) -> list[ActualNode]:
        """List containers: every unmanaged one, and managed ones of ``environment``."""
        items = self.client.json("GET", "/containers/json", params={"all": True})
        nodes = []
        for item in items or []:
            labels = item.get("Labels") or {}
            if (
                environment is not None
                and labels.get(LABEL_MANAGED) == "true"
                and labels.get(LABEL_ENVIRONMENT) != environment
            ):
                continue
            nodes.append(
                ActualNode(
                    name=(item.get("Names") or [item["Id"][:12]])[0],
                    node_id=item["Id"],
                    labels=labels,
                    state=_STATES.get(str(item.get("State", "")).lower(), "unknown"),
                    created_at=_parse_time(item.get("Created")),
                    image_id=item.get("ImageID") or "",
                )
            )
        return nodes

    def with_facts(
        self, node: ActualNode, flows: Mapping[str, Any] | None = None
    ) -> ActualNode:
        """Return ``node`` with the digest of its live facts filled in.

        With ``flows`` (the node's declared flows), also whether its live
        flow rules are those (:attr:`ActualNode.flows_enforced`), from the
        same inspect document.
        """
        try:
            inspect = self.inspect(node.name)
        except ApiError as exc:
            if exc.status == 404:
                return node
            raise
        return dataclasses.replace(
            node,
            facts_digest=canonical_digest(live_facts(inspect)),
            flows_enforced=_flows_enforced(inspect, flows) if flows else None,
        )

    def create(self, spec: NodeSpec, secret_values: Mapping[str, bytes]) -> ActualNode:
        """Create and start a hardened node.

        A node with data flows is initialised first (its network namespace
        exists, its workload does not run), given its flow rules, then
        started (ADR 0026).

        Raises:
            OperationalError: podman refused or failed, or the flow rules
                could not be installed; nothing is left behind.
        """
        config = spec.config
        for net, _aliases in sorted(config["networks"].items()):
            self.ensure_network(net, spec.labels)
        secrets, secret_env = self._create_secrets(spec, secret_values)
        body = spec_generator(spec, secrets, secret_env)
        listing = None
        try:
            created = self.client.json("POST", "/containers/create", json_body=body)
            node_id = quote_name(created["Id"])
            if config.get("flows"):
                # init creates the network namespace without starting the
                # workload: the flow rules are in force before it runs.
                self.client.request("POST", f"/containers/{node_id}/init")
                listing = self._install_flow_rules(spec)
            self.client.request("POST", f"/containers/{node_id}/start")
        except OperationalError as exc:
            with contextlib.suppress(OperationalError):
                self.destroy(spec.name, timeout=0)
            if not isinstance(exc, ApiError):
                raise  # already says what failed (flow rules, connection)
            raise OperationalError(
                f"podman could not start node {spec.name}: {exc.message}",
                hint="see the podman service log; the node was removed again",
                reference="node-start-failed",
            ) from exc
        node = self.node(spec.name)
        return dataclasses.replace(node, flow_rules=listing)

    def _install_flow_rules(self, spec: NodeSpec) -> str:
        """Install the node's flow rules; return the table as nft lists it."""
        inspect = self.inspect(spec.name)
        rules = firewall.ruleset(
            spec.config["flows"], firewall.network_addresses(inspect)
        )
        netns = firewall.netns_path(inspect)
        try:
            firewall.install(netns, rules)
            listing = firewall.installed(netns)
        except OperationalError as exc:
            raise OperationalError(
                f"cannot enforce the data flows of node {spec.name}: {exc.message}",
                hint=f"{exc.hint}; the node was removed again, nothing ran",
                reference=exc.reference,
            ) from exc
        if listing is None:
            raise OperationalError(
                f"the flow rules of node {spec.name} vanished right after install",
                hint="something else manages nftables in node namespaces; "
                "the node was removed again",
                reference="flow-rules-failed",
            )
        return listing

    def flow_rules(self, name: str) -> str | None:
        """The flow rules live in a running node's namespace, as nft lists them.

        Returns:
            The table, or ``None`` when the node has none (or no namespace).

        Raises:
            ApiError: No such node (status 404).
            OperationalError: The namespace could not be read.
        """
        inspect = self.inspect(name)
        if not (inspect.get("State") or {}).get("Running"):
            return None
        return firewall.installed(firewall.netns_path(inspect))

    def node(self, name: str) -> ActualNode:
        """Observe one node by name, with its facts digest.

        Raises:
            ApiError: No such node (status 404).
        """
        inspect = self.inspect(name)
        state = inspect.get("State") or {}
        status = str(state.get("Status", "")).lower()
        return ActualNode(
            name=inspect.get("Name", name).lstrip("/"),
            node_id=inspect["Id"],
            labels=(inspect.get("Config") or {}).get("Labels") or {},
            state=_STATES.get(status, "unknown"),
            created_at=_parse_time(inspect.get("Created")),
            image_id=inspect.get("Image") or "",
            facts_digest=canonical_digest(live_facts(inspect)),
        )

    def destroy(self, name: str, *, timeout: int = 5) -> None:
        """Stop and remove a node and its secrets; a missing node is fine."""
        self.client.request(
            "DELETE",
            f"/containers/{quote_name(name)}",
            params={"force": True, "v": False, "t": timeout},
            timeout=timeout + 30,
            ok=(404,),
        )
        for secret in self._secret_names(prefix=f"{_SECRET_PREFIX}{name}."):
            self.client.request("DELETE", f"/secrets/{quote_name(secret)}", ok=(404,))

    def quarantine(self, name: str) -> None:
        """Disconnect the node from every network and pause it."""
        inspect = self.inspect(name)
        networks = (inspect.get("NetworkSettings") or {}).get("Networks") or {}
        for network in networks:
            self.client.request(
                "POST",
                f"/networks/{quote_name(network)}/disconnect",
                json_body={"Container": name, "Force": True},
            )
        self.client.request(
            "POST", f"/containers/{quote_name(name)}/pause", ok=(304, 409)
        )

    def inspect(self, name: str) -> dict[str, Any]:
        """Return podman's inspect document for a node.

        Raises:
            ApiError: No such node (status 404).
        """
        result: dict[str, Any] = self.client.json(
            "GET", f"/containers/{quote_name(name)}/json"
        )
        return _redact(result)

    def changes(self, name: str) -> list[FileChange]:
        """List paths that differ from the node's image."""
        items = self.client.json("GET", f"/containers/{quote_name(name)}/changes")
        return [
            FileChange(item["Path"], _CHANGE_KINDS.get(item.get("Kind"), "changed"))
            for item in items or []
        ]

    def logs(self, name: str, *, tail: int = 500) -> bytes:
        """The node's most recent ``tail`` lines of stdout and stderr."""
        _, raw = self.client.request(
            "GET",
            f"/containers/{quote_name(name)}/logs",
            params={"stdout": True, "stderr": True, "tail": str(tail)},
        )
        return _demux(raw)

    def processes(self, name: str) -> list[ProcessInfo]:
        """List a running node's processes (podman's ``top``)."""
        result = self.client.json("GET", f"/containers/{quote_name(name)}/top") or {}
        titles = [str(t).upper() for t in result.get("Titles") or []]
        column = {title: index for index, title in enumerate(titles)}
        processes = []
        for row in result.get("Processes") or []:
            processes.append(
                ProcessInfo(
                    pid=int(row[column["PID"]]),
                    ppid=int(row[column["PPID"]]),
                    user=str(row[column["USER"]]),
                    command=str(row[column.get("COMMAND", len(row) - 1)]),
                )
            )
        return processes

    def events(
        self, *, since: float | None = None, until: float | None = None
    ) -> Iterator[NodeEvent]:
        """Yield container events; streams until ``until`` (or forever)."""
        params: dict[str, Any] = {
            "stream": True,
            "filters": {"type": ["container"]},
            "since": None if since is None else str(int(since)),
            "until": None if until is None else str(int(until) + 1),
        }
        timeout = None if until is None else max(1.0, until - time.time() + 2)
        for line in self.client.stream_lines(
            "/events", params=params, timeout=timeout or 3600
        ):
            item = json.loads(line)
            actor = item.get("Actor") or {}
            attributes = actor.get("Attributes") or {}
            yield NodeEvent(
                time=float(item.get("timeNano", 0)) / 1e9 or float(item.get("time", 0)),
                action=str(item.get("Action") or item.get("status") or ""),
                node_id=str(actor.get("ID") or item.get("id") or ""),
                name=str(attributes.get("name", "")),
                attributes=attributes,
            )

    def probe(self, name: str, health: Mapping[str, Any]) -> HealthResult:
        """Run the node's health probe once (see ADR 0022)."""
        inspect = self.inspect(name)
        state = inspect.get("State") or {}
        if not state.get("Running"):
            status = str(state.get("Status") or "").lower()
            return HealthResult(
                False,
                f"not running ({status}, exit {state.get('ExitCode')})",
                stopped=status in _STOPPED,
            )
        timeout = float(health.get("timeout") or 3)
        if health.get("command"):
            return self._exec_probe(name, list(health["command"]), timeout)
        port = int(health["port"])
        ok, detail = probe_in_netns(
            int(state["Pid"]), port, http_path=health.get("path"), timeout=timeout
        )
        return HealthResult(ok, detail)

    def _exec_probe(
        self, name: str, command: list[str], timeout: float
    ) -> HealthResult:
        created = self.client.json(
            "POST",
            f"/containers/{quote_name(name)}/exec",
            json_body={"Cmd": command, "AttachStdout": True, "AttachStderr": True},
        )
        exec_id = quote_name(created["Id"])
        try:
            _, raw = self.client.request(
                "POST",
                f"/exec/{exec_id}/start",
                json_body={"Detach": False, "Tty": False},
                timeout=timeout + 2,
            )
        except OperationalError as exc:
            return HealthResult(False, f"command probe failed: {exc.message}")
        info = self.client.json("GET", f"/exec/{exec_id}/json")
        code = info.get("ExitCode")
        output = _demux(raw).decode("utf-8", "replace").strip()[-200:]
        return HealthResult(
            code == 0, f"exit {code}: {output}" if output else f"exit {code}"
        )

    # --- images, networks, secrets --------------------------------------

    def has_image(self, ref: str) -> bool:
        """Whether the runtime's store holds ``ref``."""
        status, _ = self.client.request(
            "GET", f"/images/{quote_name(ref)}/exists", ok=(404,)
        )
        return status == 204

    def load_image(
        self, ref: str, digest: str, archive: Callable[[], Iterator[bytes]]
    ) -> None:
        """Load an OCI archive unless ``ref`` is present; check its digest.

        Raises:
            IntegrityError: podman stored a different manifest digest.
        """
        if not self.has_image(ref):
            self.client.request(
                "POST",
                "/images/load",
                body=archive(),
                content_type="application/x-tar",
                timeout=600,
            )
        info = self.client.json("GET", f"/images/{quote_name(ref)}/json")
        digests = set(info.get("RepoDigests") or []) | {info.get("Digest")}
        if not any(str(d).endswith(digest) for d in digests):
            raise IntegrityError(
                f"podman stored {ref} with digest {info.get('Digest')}, "
                f"expected {digest}",
                reference="image-digest-mismatch",
            )

    def remove_images_sharing(self, folders: set[str]) -> list[str]:
        """Remove every stored image with a layer in ``folders``; return their ids.

        Images still used by a container are not forced out: podman would
        remove the containers with them.

        Raises:
            OperationalError: An image is still used by a container.
        """
        removed = []
        for item in self.client.json("GET", "/images/json", params={"all": True}):
            info = self.client.json("GET", f"/images/{item['Id']}/json")
            data = (info.get("GraphDriver") or {}).get("Data") or {}
            mine = {str(data.get("UpperDir") or "")}
            mine |= set(str(data.get("LowerDir") or "").split(":"))
            if not mine & folders:
                continue
            try:
                self.client.request("DELETE", f"/images/{item['Id']}")
            except ApiError as exc:
                if exc.status == 404:
                    continue
                raise OperationalError(
                    f"image {item['Id'][:12]} shares a tampered layer and cannot "
                    f"be removed: {exc.message}",
                    hint="it is still used by containers (another environment?): "
                    "answer them too, then respond again",
                    reference="respond-image-in-use",
                ) from exc
            removed.append(str(item["Id"]))
        return removed

    def ensure_network(self, name: str, labels: Mapping[str, str]) -> None:
        """Create an internal network (no route out) unless it exists."""
        if name in self._networks:
            return
        status, _ = self.client.request(
            "GET", f"/networks/{quote_name(name)}/exists", ok=(404,)
        )
        if status == 404:
            net_labels = {k: v for k, v in labels.items() if k in _NETWORK_LABELS}
            self.client.request(
                "POST",
                "/networks/create",
                json_body={
                    "name": name,
                    "internal": True,
                    "dns_enabled": True,
                    "labels": net_labels,
                },
                ok=(409,),
            )
        self._networks.add(name)

    def networks(self, environment: str, fleet: str | None = None) -> list[str]:
        """Names of the networks zerodrift created for ``environment``.

        With ``fleet``, only that fleet's: other fleets may have an
        environment of the same name on this podman.
        """
        labels = [f"{LABEL_ENVIRONMENT}={environment}"]
        if fleet is not None:
            labels.append(f"{LABEL_FLEET}={fleet}")
        items = self.client.json(
            "GET", "/networks/json", params={"filters": {"label": labels}}
        )
        return sorted(item["name"] for item in items or [])

    def remove_network(self, name: str) -> None:
        """Remove a network; one still in use or already gone is left alone."""
        self.client.request(
            "DELETE", f"/networks/{quote_name(name)}", ok=(404, 409, 500)
        )
        self._networks.discard(name)

    def clean_up(
        self, environment: str, keep_networks: Iterable[str], fleet: str
    ) -> None:
        """Remove the fleet's unused networks and orphaned secrets."""
        keep = set(keep_networks)
        for net in self.networks(environment, fleet):
            if net not in keep:
                self.remove_network(net)
        self.remove_orphan_secrets({n.name for n in self.list_nodes()})

    def remove_orphan_secrets(self, live_names: set[str]) -> int:
        """Delete node secrets whose node no longer exists; return how many."""
        removed = 0
        for secret in self._secret_names(prefix=_SECRET_PREFIX):
            node = secret[len(_SECRET_PREFIX) :].rsplit(".", 1)[0]
            if node not in live_names:
                self.client.request(
                    "DELETE", f"/secrets/{quote_name(secret)}", ok=(404,)
                )
                removed += 1
        return removed

    def _secret_names(self, prefix: str) -> list[str]:
        items = self.client.json("GET", "/secrets/json")
        names = [str((item.get("Spec") or {}).get("Name", "")) for item in items or []]
        return [n for n in names if n.startswith(prefix)]

    def _create_secrets(
        self, spec: NodeSpec, values: Mapping[str, bytes]
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        mounts: list[dict[str, Any]] = []
        env: dict[str, str] = {}
        uid, _, gid = str(spec.config["user"]).partition(":")
        for secret in spec.config["secrets"]:
            runtime_name = f"{_SECRET_PREFIX}{spec.name}.{secret['name']}"
            self.client.request(
                "DELETE", f"/secrets/{quote_name(runtime_name)}", ok=(404,)
            )
            self.client.request(
                "POST",
                "/secrets/create",
                params={"name": runtime_name},
                body=values[secret["name"]],
                content_type="application/octet-stream",
            )
            target = secret["target"]
            if target.startswith("/"):
                mounts.append(
                    {
                        "Source": runtime_name,
                        "Target": target,
                        "UID": int(uid),
                        "GID": int(gid or uid),
                        "Mode": 0o400,
                    }
                )
            else:
                env[target] = runtime_name
        return mounts, env


_NETWORK_LABELS = {LABEL_MANAGED, LABEL_ENVIRONMENT, LABEL_FLEET}
_STOPPED = frozenset({"exited", "stopped", "dead"})
"""Podman states a node does not leave by itself (``created`` and
``initialized`` come before a start that is still under way)."""


def _flows_enforced(inspect: dict[str, Any], flows: Mapping[str, Any]) -> bool | None:
    """Whether a running node's live flow rules are the ``flows`` declared.

    ``None`` when that cannot be told (the node is not running, or its
    network namespace cannot be read). A paused node (quarantined) counts as
    not running, as in :attr:`ActualNode.state`.
    """
    state = inspect.get("State") or {}
    if not state.get("Running") or state.get("Paused"):
        return None
    try:
        declared = firewall.ruleset(flows, firewall.network_addresses(inspect))
        live = firewall.installed(firewall.netns_path(inspect))
    except OperationalError:
        return None
    return firewall.matches(declared, live)


def _redact(inspect: dict[str, Any]) -> dict[str, Any]:
    """Hide values of environment variables that carry secrets.

    Podman 4 shows secrets delivered as environment variables in its own
    inspect output; zerodrift never passes them on (see ADR 0021).
    """
    # TODO: drop this once the podman versions zerodrift supports keep
    # environment secrets out of inspect output themselves.
    config = inspect.get("Config") or {}
    names = set(
        filter(None, (config.get("Labels") or {}).get(LABEL_SECRET_ENV, "").split(","))
    )
    if names and config.get("Env"):
        config["Env"] = [
            f"{entry.partition('=')[0]}=<secret>"
            if entry.partition("=")[0] in names
            else entry
            for entry in config["Env"]
        ]
    return inspect


def _demux(raw: bytes) -> bytes:
    """Join the payloads of podman's multiplexed stdout/stderr stream."""
    out = bytearray()
    offset = 0
    while offset + 8 <= len(raw) and raw[offset] in (0, 1, 2):
        size = int.from_bytes(raw[offset + 4 : offset + 8], "big")
        out += raw[offset + 8 : offset + 8 + size]
        offset += 8 + size
    return bytes(out) if offset else raw


def _parse_time(value: Any) -> float:
    if not value:
        return 0.0
    if isinstance(value, int | float):
        return float(value)
    text = str(value)
    # podman prints nanoseconds; Python parses at most microseconds.
    if "." in text:
        head, _, tail = text.partition(".")
        digits = "".join(c for c in tail if c.isdigit())
        zone = tail[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
