"""Apply: carry out a plan by creating and destroying nodes, surge first.

For each service the executor creates new nodes (at most ``max_surge`` above
the replica count, plus ``max_unavailable`` whose predecessors it may remove
first), waits until every new node passes its health probe, and only then
destroys the nodes they replace. When new nodes never become healthy within
``health_timeout`` it destroys them and restores the previous nodes of the
service from the specs recorded when they were created, so the service ends
on the previous digest. The fleet never has fewer healthy nodes of a service
than ``replicas - max_unavailable``.

Every step is journalled before it runs (:class:`Journal`) and every state
change goes to the audit trail through ``record``.
"""

from __future__ import annotations

import logging
import secrets as token
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from zerodrift.errors import OperationalError, ZerodriftError
from zerodrift.reconcile.desired import DesiredService
from zerodrift.reconcile.journal import Journal
from zerodrift.reconcile.plan import Action, Plan
from zerodrift.runtime.backend import (
    LABEL_CONFIG,
    LABEL_ENVIRONMENT,
    LABEL_FLEET,
    LABEL_GENERATION,
    LABEL_IDENTITY,
    LABEL_IMAGE_DIGEST,
    LABEL_MANAGED,
    LABEL_SERVICE,
    LABEL_STATE,
    NodeSpec,
    RuntimeBackend,
)
from zerodrift.runtime.images import runtime_ref
from zerodrift.runtime.secrets import SecretResolver

__all__ = ["ApplyResult", "Executor"]

_logger = logging.getLogger(__name__)

Record = Callable[[str, str, dict[str, Any]], object]
Progress = Callable[[str], None]


@dataclass
class ApplyResult:
    """What an apply did."""

    run_id: str
    created: list[str] = field(default_factory=list)
    destroyed: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether every service reached its desired state."""
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        """Render as a JSON-ready dict."""
        return {
            "run_id": self.run_id,
            "status": "succeeded" if self.ok else "failed",
            "created": self.created,
            "destroyed": self.destroyed,
            "rolled_back": self.rolled_back,
            "failures": self.failures,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _New:
    name: str
    spec: NodeSpec
    healthy: bool = False
    detail: str = ""


class Executor:
    """Carries out plans for one environment.

    Args:
        backend: The runtime.
        journal: The journal of this run (already started).
        secrets: Reads secret values at creation time.
        record: Appends to the audit trail.
        progress: Receives one line per step, for people.
        fleet: The fleet's name (its networks are the ones cleaned up).
        state: The id of the state database, labelled on every node.
        poll: Seconds between health probes.
    """

    def __init__(
        self,
        backend: RuntimeBackend,
        journal: Journal,
        secrets: SecretResolver,
        record: Record,
        progress: Progress,
        *,
        fleet: str,
        state: str,
        poll: float = 0.1,
    ) -> None:
        self.backend = backend
        self.fleet = fleet
        self.state = state
        self.journal = journal
        self.secrets = secrets
        self.record = record
        self.progress = progress
        self.poll = poll
        self.environment = journal.environment

    # --- entry point ------------------------------------------------------

    def apply(self, plan: Plan, desired: Sequence[DesiredService]) -> ApplyResult:
        """Carry out ``plan``; return what happened (failures included).

        Raises:
            ConfigError: A secret of a node to create cannot be read; raised
                before anything is changed.
        """
        started = time.monotonic()
        result = ApplyResult(self.journal.run_id)
        by_service: dict[str | None, list[Action]] = {}
        for action in plan.actions:
            by_service.setdefault(action.service, []).append(action)
        values = {
            want.name: self._secret_values(want.name, want.config)
            for want in desired
            if any(a.kind != "destroy" for a in by_service.get(want.name, []))
        }
        for want in _flow_order(desired):
            actions = by_service.get(want.name, [])
            if not actions:
                continue
            try:
                self._service(want, actions, values.get(want.name, {}), result)
            except ZerodriftError as exc:
                result.failures.append(f"{want.name}: {exc.message}")
                self.progress(f"[{want.name}] failed: {exc.message}")
        for action in by_service.get(None, []):
            self._destroy(action.node or "", None, action.reason, result)
        self._clean_up(desired)
        result.seconds = time.monotonic() - started
        return result

    # --- one service --------------------------------------------------------

    def _service(
        self,
        want: DesiredService,
        actions: list[Action],
        values: Mapping[str, bytes],
        result: ApplyResult,
    ) -> None:
        for action in actions:
            if action.kind == "destroy":
                self._destroy(action.node or "", want.name, action.reason, result)
        creates = [a for a in actions if a.kind == "create"]
        if creates:
            batch = self._create_batch(want, creates, values, result)
            failed = [n for n in batch if not n.healthy]
            if failed:
                for node in failed:
                    self._destroy(node.name, want.name, "unhealthy", result)
                raise _unhealthy(want, failed)
        replaces = [a for a in actions if a.kind == "replace"]
        size = want.max_surge + want.max_unavailable
        done: list[tuple[Action, _New]] = []
        for start in range(0, len(replaces), size):
            batch_actions = replaces[start : start + size]
            early = batch_actions[: want.max_unavailable]
            for action in early:
                self._destroy(action.node or "", want.name, action.reason, result)
            batch = self._create_batch(want, batch_actions, values, result)
            failed = [n for n in batch if not n.healthy]
            if failed:
                self._roll_back(
                    want=want,
                    done=done,
                    batch_actions=batch_actions,
                    batch=batch,
                    early=early,
                    result=result,
                )
                raise _unhealthy(want, failed)
            for action in batch_actions[want.max_unavailable :]:
                self._destroy(action.node or "", want.name, action.reason, result)
            done.extend(zip(batch_actions, batch, strict=True))

    def _secret_values(
        self, service: str, config: Mapping[str, Any]
    ) -> dict[str, bytes]:
        return {
            s["name"]: self.secrets.value(service, s["name"], s["source"])
            for s in config["secrets"]
        }

    def _node_spec(self, want: DesiredService, generation: int) -> NodeSpec:
        name = (
            f"{want.environment}-{want.name}-"
            f"{want.identity.partition(':')[2][:8]}-{token.token_hex(3)}"
        )
        labels = {
            LABEL_MANAGED: "true",
            LABEL_FLEET: str(want.config["fleet"]),
            LABEL_STATE: self.state,
            LABEL_ENVIRONMENT: want.environment,
            LABEL_SERVICE: want.name,
            LABEL_IDENTITY: want.identity,
            LABEL_GENERATION: str(generation),
            LABEL_IMAGE_DIGEST: want.image_digest,
            LABEL_CONFIG: want.config_digest,
        }
        return NodeSpec(
            name, runtime_ref(want.image_digest), want.image_digest, want.config, labels
        )

    def _create_batch(
        self,
        want: DesiredService,
        actions: Sequence[Action],
        values: Mapping[str, bytes],
        result: ApplyResult,
    ) -> list[_New]:
        specs = [self._node_spec(want, a.generation or 1) for a in actions]
        return self._start_specs(
            service=want.name,
            specs=specs,
            values=values,
            health=want.config["health"],
            health_timeout=want.health_timeout,
            reasons=[a.reason for a in actions],
            result=result,
        )

    def _start_specs(
        self,
        *,
        service: str,
        specs: Sequence[NodeSpec],
        values: Mapping[str, bytes],
        health: Mapping[str, Any] | None,
        health_timeout: int,
        reasons: Sequence[str],
        result: ApplyResult,
    ) -> list[_New]:
        steps = [
            self.journal.begin_step(
                "create",
                spec.name,
                service=service,
                identity=spec.labels[LABEL_IDENTITY],
                reason=reason,
            )
            for spec, reason in zip(specs, reasons, strict=True)
        ]
        with ThreadPoolExecutor(max_workers=min(8, len(specs))) as pool:
            futures = [pool.submit(self.backend.create, s, values) for s in specs]
            outcomes: list[BaseException | None] = [f.exception() for f in futures]
        nodes = []
        for spec, step, error, future in zip(
            specs, steps, outcomes, futures, strict=True
        ):
            node = _New(spec.name, spec)
            if error is not None:
                node.detail = str(getattr(error, "message", error))
                self.journal.end_step(step, "failed", {"error": node.detail})
                self.progress(f"[{service}] create {spec.name} failed: {node.detail}")
            else:
                facts = self.backend.node(spec.name).facts_digest
                self.journal.node_created(
                    spec.name,
                    service=service,
                    identity=spec.labels[LABEL_IDENTITY],
                    image_digest=spec.image_digest,
                    generation=int(spec.labels[LABEL_GENERATION]),
                    spec=_spec_record(spec),
                    facts_digest=facts,
                )
                self.journal.end_step(step, "done")
                result.created.append(spec.name)
                details: dict[str, Any] = {
                    "environment": self.environment,
                    "service": service,
                    "identity": spec.labels[LABEL_IDENTITY],
                    "image_digest": spec.image_digest,
                }
                rules = future.result().flow_rules
                if rules is not None:
                    details["flow_rules"] = rules
                self.record("node.created", spec.name, details)
                self.progress(f"[{service}] created {spec.name}")
            nodes.append(node)
        started = [n for n in nodes if not n.detail]
        self._wait_healthy(service, started, health, health_timeout)
        return nodes

    def _wait_healthy(
        self,
        service: str,
        nodes: list[_New],
        health: Mapping[str, Any] | None,
        timeout: int,
    ) -> None:
        began = time.monotonic()
        deadline = began + timeout
        pending = list(nodes)
        probe = dict(health or {})
        while pending:
            for node in list(pending):
                stopped = False
                if probe:
                    outcome = self.backend.probe(node.name, probe)
                    ok, node.detail = outcome.healthy, outcome.detail
                    stopped = outcome.stopped
                else:
                    state = self.backend.node(node.name).state
                    ok, node.detail = state == "running", state
                if ok:
                    node.healthy = True
                    pending.remove(node)
                    self.progress(
                        f"[{service}] {node.name} healthy after "
                        f"{time.monotonic() - began:.1f} s"
                    )
                elif stopped:
                    node.detail += self._last_words(node.name)
                    pending.remove(node)
                    self.progress(f"[{service}] {node.name} died: {node.detail}")
            if not pending:
                return
            if time.monotonic() >= deadline:
                for node in pending:
                    self.progress(
                        f"[{service}] {node.name} not healthy after {timeout} s: "
                        f"{node.detail}"
                    )
                return
            time.sleep(self.poll)

    def _last_words(self, name: str) -> str:
        """The end of a dead node's log, to say why it died."""
        try:
            tail = self.backend.logs(name, tail=3).decode("utf-8", "replace")
        except ZerodriftError:
            return ""
        lines = [line.strip() for line in tail.splitlines() if line.strip()]
        return f"; its log ends: {' | '.join(lines)[-300:]}" if lines else ""

    def _destroy(
        self, name: str, service: str | None, reason: str, result: ApplyResult
    ) -> None:
        step = self.journal.begin_step(
            "destroy", name, service=service, identity=None, reason=reason
        )
        self.backend.destroy(name, timeout=2)
        self.journal.node_destroyed(name)
        self.journal.end_step(step, "done")
        result.destroyed.append(name)
        self.record(
            "node.destroyed",
            name,
            {"environment": self.environment, "service": service, "reason": reason},
        )
        self.progress(f"[{service or 'unmanaged'}] destroyed {name} ({reason})")

    # --- rollback -----------------------------------------------------------

    def _roll_back(
        self,
        *,
        want: DesiredService,
        done: list[tuple[Action, _New]],
        batch_actions: Sequence[Action],
        batch: list[_New],
        early: Sequence[Action],
        result: ApplyResult,
    ) -> None:
        """Restore the previous nodes of ``want`` and remove the new ones."""
        self.progress(f"[{want.name}] new nodes never became healthy: rolling back")
        for node in batch:
            if node.name in result.created:
                self._destroy(node.name, want.name, "rollback", result)
        lost = [a for a, _ in done] + list(early)
        restored: list[_New] = []
        for action in lost:
            previous = self.journal.node_spec(action.node or "")
            if previous is None:
                self.progress(
                    f"[{want.name}] no record of {action.node}; cannot restore"
                )
                continue
            spec = _spec_from_record(previous, self.environment, want.name)
            restored.extend(
                self._start_specs(
                    service=want.name,
                    specs=[spec],
                    values=self._secret_values(want.name, previous["config"]),
                    health=previous["config"].get("health"),
                    health_timeout=want.health_timeout,
                    reasons=["rollback"],
                    result=result,
                )
            )
        if all(n.healthy for n in restored):
            for _, new in done:
                self._destroy(new.name, want.name, "rollback", result)
        result.rolled_back.append(want.name)
        self.record(
            "apply.rollback",
            want.name,
            {
                "environment": self.environment,
                "failed_digest": want.image_digest,
                "restored_digest": batch_actions[0].previous_digest,
                "restored_nodes": [n.name for n in restored if n.healthy],
            },
        )

    def _clean_up(self, desired: Sequence[DesiredService]) -> None:
        wanted = {net for d in desired for net in d.config["networks"]}
        try:
            self.backend.clean_up(self.environment, wanted, self.fleet)
        except OperationalError as exc:
            _logger.warning("clean-up after apply failed: %s", exc.message)


def _unhealthy(want: DesiredService, failed: list[_New]) -> OperationalError:
    details = "; ".join(f"{n.name}: {n.detail}" for n in failed[:3])
    return OperationalError(
        f"{len(failed)} new node(s) of {want.name!r} never became healthy within "
        f"{want.health_timeout} s ({details})",
        hint="check the health probe and the image; the previous nodes were kept",
        reference="rollout-failed",
    )


def _spec_record(spec: NodeSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "image_ref": spec.image_ref,
        "image_digest": spec.image_digest,
        "config": dict(spec.config),
        "labels": dict(spec.labels),
    }


def _spec_from_record(
    record: Mapping[str, Any], environment: str, service: str
) -> NodeSpec:
    identity = str(record["labels"][LABEL_IDENTITY])
    name = (
        f"{environment}-{service}-{identity.partition(':')[2][:8]}-{token.token_hex(3)}"
    )
    return NodeSpec(
        name,
        str(record["image_ref"]),
        str(record["image_digest"]),
        dict(record["config"]),
        dict(record["labels"]),
    )


def _flow_order(desired: Sequence[DesiredService]) -> list[DesiredService]:
    """Services that others talk to first, so dependencies come up first."""
    targets: dict[str, int] = {}
    for want in desired:
        for _net, aliases in want.config["networks"].items():
            if aliases:
                targets[want.name] = targets.get(want.name, 0) + 1
    return sorted(desired, key=lambda d: (-targets.get(d.name, 0), d.name))
