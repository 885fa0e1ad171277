"""The runtime backend protocol: what the reconciler needs from a runtime.

A backend runs *nodes*: containers created from one pinned image digest and
one resolved configuration (:class:`NodeSpec`), labelled with their identity.
There is deliberately no operation that changes a node: the reconciler only
creates, destroys and (for incident response) quarantines. Everything the
reconciler reads back is an :class:`ActualNode`, a small value that planning
can compare without further IO.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "LABEL_CONFIG",
    "LABEL_ENVIRONMENT",
    "LABEL_FLEET",
    "LABEL_GENERATION",
    "LABEL_IDENTITY",
    "LABEL_IMAGE_DIGEST",
    "LABEL_MANAGED",
    "LABEL_STATE",
    "LABEL_SERVICE",
    "ActualNode",
    "FileChange",
    "HealthResult",
    "NodeEvent",
    "NodeSpec",
    "NodeState",
    "ProcessInfo",
    "RuntimeBackend",
]

LABEL_MANAGED = "io.zerodrift.managed"
LABEL_FLEET = "io.zerodrift.fleet"
LABEL_ENVIRONMENT = "io.zerodrift.environment"
LABEL_SERVICE = "io.zerodrift.service"
LABEL_IDENTITY = "io.zerodrift.identity"
LABEL_GENERATION = "io.zerodrift.generation"
LABEL_IMAGE_DIGEST = "io.zerodrift.image-digest"
LABEL_CONFIG = "io.zerodrift.config-digest"
LABEL_STATE = "io.zerodrift.state"
"""The id of the state database whose apply created the node."""

NodeState = Literal["created", "running", "paused", "exited", "unknown"]


@dataclass(frozen=True)
class NodeSpec:
    """Everything a backend needs to create one hardened node.

    Attributes:
        name: The node's unique name (also the container name).
        image_ref: Where the backend finds the image (pinned by digest).
        image_digest: The manifest digest the node must run.
        config: The resolved configuration (no secret values), as a dict in
            the shape of :meth:`zerodrift.reconcile.desired.NodeConfig.to_dict`.
        labels: Identity labels to attach.
    """

    name: str
    image_ref: str
    image_digest: str
    config: Mapping[str, Any]
    labels: Mapping[str, str]


@dataclass(frozen=True)
class ActualNode:
    """A node as observed in the runtime.

    Attributes:
        name: Container name.
        node_id: Runtime id.
        labels: All labels of the container.
        state: Coarse state.
        created_at: Creation time, seconds since the epoch.
        image_id: The runtime's image id.
        facts_digest: Digest of the security-relevant live configuration
            (see :func:`zerodrift.runtime.podman.live_facts`); compared with
            the digest the state database recorded at creation to detect
            in-place changes.
        flow_rules: The flow rules installed in the node's network namespace
            as ``nft`` lists them (see :mod:`zerodrift.runtime.firewall`);
            set by ``create`` for nodes with data flows, else ``None``.
        flows_enforced: Whether the live flow rules are the declared ones;
            ``None`` when they were not read (see
            :meth:`RuntimeBackend.with_facts`).
    """

    name: str
    node_id: str
    labels: Mapping[str, str]
    state: NodeState
    created_at: float
    image_id: str = ""
    facts_digest: str | None = None
    flow_rules: str | None = None
    flows_enforced: bool | None = None

    @property
    def managed(self) -> bool:
        """Whether zerodrift created this node."""
        return self.labels.get(LABEL_MANAGED) == "true"

    @property
    def service(self) -> str | None:
        """The service this node belongs to, if labelled."""
        return self.labels.get(LABEL_SERVICE)

    @property
    def identity(self) -> str | None:
        """The node identity label, if any."""
        return self.labels.get(LABEL_IDENTITY)

    def deployed_as(self, fleet: str, environment: str) -> bool:
        """Whether zerodrift created this node for ``fleet`` in ``environment``.

        By any project: :attr:`state_id` tells which one.
        """
        return (
            self.managed
            and self.labels.get(LABEL_FLEET) == fleet
            and self.labels.get(LABEL_ENVIRONMENT) == environment
        )

    def belongs_to(self, fleet: str, environment: str, state: str) -> bool:
        """Whether the project with state database ``state`` owns this node.

        Nodes created before nodes carried the state label have none; they
        belong to whichever project deploys their fleet and environment.
        """
        return self.deployed_as(fleet, environment) and self.state_id in (None, state)

    @property
    def state_id(self) -> str | None:
        """The id of the state database that created the node, if labelled."""
        return self.labels.get(LABEL_STATE)


@dataclass(frozen=True)
class FileChange:
    """A path that differs from the node's image ("C", "A" or "D")."""

    path: str
    kind: Literal["changed", "added", "deleted"]


@dataclass(frozen=True)
class ProcessInfo:
    """A process of a node, numbered in the node's PID namespace."""

    pid: int
    ppid: int
    user: str
    command: str


@dataclass(frozen=True)
class NodeEvent:
    """A runtime event about a node (start, die, exec, ...)."""

    time: float
    action: str
    node_id: str
    name: str
    attributes: Mapping[str, str]


@dataclass(frozen=True)
class HealthResult:
    """The outcome of one health probe.

    Attributes:
        healthy: Whether the probe passed.
        detail: What was seen, for people.
        stopped: The node has stopped and will not start by itself (exited
            or dead), so waiting longer for it is pointless. A node not yet
            started is not stopped.
    """

    healthy: bool
    detail: str
    stopped: bool = False


@runtime_checkable
class RuntimeBackend(Protocol):
    """What zerodrift needs from a container runtime."""

    def ping(self) -> None:
        """Check that the runtime answers.

        Raises:
            OperationalError: The runtime is unreachable.
        """

    def list_nodes(self, environment: str | None = None) -> list[ActualNode]:
        """List every container (managed or not), optionally one environment's.

        Unmanaged containers are always included: they are what the
        reconciler reports as unmanaged assets.
        """

    def create(self, spec: NodeSpec, secret_values: Mapping[str, bytes]) -> ActualNode:
        """Create and start a hardened node; return it as observed.

        A node with data flows gets its flow rules before its workload
        starts (ADR 0026); when they cannot be installed, the node is
        removed again and creation fails.

        Args:
            spec: The node to create.
            secret_values: Value of each declared secret, by secret name; the
                backend keeps them in its own secret store, never in the
                node's configuration.
        """

    def destroy(self, name: str, *, timeout: int = 5) -> None:
        """Stop and remove a node and its private secrets; absent is fine."""

    def quarantine(self, name: str) -> None:
        """Cut a node off every network and freeze its processes."""

    def inspect(self, name: str) -> dict[str, Any]:
        """Return the node's live configuration as the runtime reports it."""

    def changes(self, name: str) -> list[FileChange]:
        """List paths changed in the node's filesystem relative to its image."""

    def events(
        self, *, since: float | None = None, until: float | None = None
    ) -> Iterator[NodeEvent]:
        """Yield node events (blocking until ``until`` when it is given)."""

    def processes(self, name: str) -> list[ProcessInfo]:
        """List a running node's processes."""

    def logs(self, name: str, *, tail: int = 500) -> bytes:
        """The node's most recent output lines."""

    def probe(self, name: str, health: Mapping[str, Any]) -> HealthResult:
        """Run the spec's health probe once against a node."""

    def node(self, name: str) -> ActualNode:
        """Observe one node, with the digest of its live facts."""

    def with_facts(
        self, node: ActualNode, flows: Mapping[str, Any] | None = None
    ) -> ActualNode:
        """Return ``node`` with the digest of its live facts filled in.

        With ``flows``, also whether its live flow rules are those declared
        (:attr:`ActualNode.flows_enforced`).
        """

    def load_image(
        self, ref: str, digest: str, archive: Callable[[], Iterator[bytes]]
    ) -> None:
        """Make image ``digest`` available as ``ref`` (from ``archive``).

        Raises:
            IntegrityError: The runtime stored a different digest.
        """

    def clean_up(
        self, environment: str, keep_networks: Iterable[str], fleet: str
    ) -> None:
        """Remove the fleet's unused networks and orphaned node secrets.

        Only ``fleet``'s networks in ``environment`` are considered: other
        fleets may have an environment of the same name on the runtime.
        """
