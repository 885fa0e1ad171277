"""One environment's reconcile session: observe, plan, apply, recover.

This module joins the pure core (desired state, planning) to the edges
(image store, verifier, runtime, state database, audit trail). Commands
build a :class:`Session` and call :meth:`Session.plan`, :meth:`Session.apply`
or :func:`zerodrift.recover.recover`.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zerodrift.errors import ConfigError, Location
from zerodrift.project import SPEC_FILE
from zerodrift.reconcile.apply import ApplyResult, Executor
from zerodrift.reconcile.desired import DesiredService, desired_state
from zerodrift.reconcile.journal import Journal
from zerodrift.reconcile.lock import environment_lock
from zerodrift.reconcile.plan import Action, Plan, plan_environment
from zerodrift.runtime.backend import LABEL_STATE, ActualNode
from zerodrift.runtime.images import (
    ImageSource,
    ImageVerifier,
    RefuseUnverified,
    ResolvedImage,
    runtime_ref,
)
from zerodrift.runtime.podman import PodmanBackend
from zerodrift.runtime.secrets import SecretResolver
from zerodrift.spec.models import Fleet
from zerodrift.state import Database

__all__ = [
    "RUNTIME_ENV",
    "Session",
    "VerifierFactory",
    "installed_verifier",
    "set_verifier_factory",
]

RUNTIME_ENV = "ZERODRIFT_RUNTIME"
"""Overrides every environment's ``runtime`` URL (e.g. a shared socket)."""

VerifierFactory = Callable[[], ImageVerifier]
_verifier_factory: VerifierFactory | None = None


def set_verifier_factory(factory: VerifierFactory | None) -> VerifierFactory | None:
    """Override how sessions verify images; return the previous override.

    With no override, a session uses the verifier it was given (the command
    line gives the trust-policy verifier over the image store) or refuses
    every image. Runtime tests, whose images are unsigned, install
    ``UnsafeNoVerification`` here.
    """
    global _verifier_factory  # noqa: PLW0603 - one process-wide policy
    previous = _verifier_factory
    _verifier_factory = factory
    return previous


def installed_verifier() -> ImageVerifier | None:
    """The verifier of the process-wide override, if one is installed."""
    return _verifier_factory() if _verifier_factory is not None else None


Record = Callable[[str, str, dict[str, Any]], object]


@dataclass
class Session:
    """Everything needed to reconcile one environment.

    Args:
        fleet: The validated spec.
        spec_digest: Digest of the spec.
        environment: Environment name.
        source: The image store.
        db: The state database.
        state_dir: The project's ``.zerodrift`` folder.
        secrets: Reads secret values.
        record: Appends to the audit trail.
        git_commit: Commit of the spec, for the journal.
        environ: Process environment (for the runtime override).
        verifier: Checks every image before use; ``None`` refuses every
            image.
        pinned: Image digest to use per image name instead of the store's
            current one (a recovery to what ran at a commit).
    """

    fleet: Fleet
    spec_digest: str
    environment: str
    source: ImageSource
    db: Database
    state_dir: Path
    secrets: SecretResolver
    record: Record
    git_commit: str | None = None
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    verifier: ImageVerifier | None = None
    pinned: dict[str, str] = field(default_factory=dict)
    _backend: PodmanBackend | None = field(default=None, init=False, repr=False)

    @property
    def runtime_url(self) -> str:
        """The runtime URL of the environment (or the override)."""
        override = self.environ.get(RUNTIME_ENV)
        if override:
            return override
        env = self.fleet.environments.get(self.environment)
        return env.runtime if env is not None else "podman://"

    @property
    def backend(self) -> PodmanBackend:
        """The runtime backend, connected on first use."""
        if self._backend is None:
            url = self.runtime_url
            if url.startswith("kubernetes://"):
                raise ConfigError(
                    f"environment {self.environment!r} uses {url}, which this "
                    "version does not support yet",
                    hint="use runtime: podman://",
                    location=Location(
                        SPEC_FILE, field=f"environments.{self.environment}.runtime"
                    ),
                    reference="runtime-unsupported",
                )
            self._backend = PodmanBackend.connect(
                url,
                self.state_dir / "podman",
                private_storage=self.environ.get("ZERODRIFT_PODMAN_STORAGE")
                == "private",
            )
        return self._backend

    def close(self) -> None:
        """Stop a private podman service this session started."""
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    # --- planning -----------------------------------------------------------

    def images(self) -> dict[str, ResolvedImage]:
        """Resolve each image the environment's services use to its digest.

        Raises:
            ConfigError: An image is missing from the store.
        """
        names = {svc.image for svc in self.fleet.services.values()}
        return {
            name: ResolvedImage(name, self.pinned[name])
            if name in self.pinned
            else self.source.resolve(name)
            for name in sorted(names)
        }

    def desired(self) -> list[DesiredService]:
        """The desired state of the environment."""
        images = self.images()
        return desired_state(
            self.fleet, self.environment, {n: i.digest for n, i in images.items()}
        )

    @functools.cached_property
    def state_id(self) -> str:
        """The id of this project's state database, which its nodes carry."""
        return self.db.state_id()

    def owns(self, node: ActualNode) -> bool:
        """Whether ``node`` is one of this project's nodes of the environment."""
        return node.belongs_to(self.fleet.name, self.environment, self.state_id)

    def observe(
        self, journal: Journal, desired: Sequence[DesiredService]
    ) -> tuple[list[ActualNode], dict[str, Any]]:
        """Observe every container, with live facts for this environment's.

        The project's running nodes with data flows also have their flow
        rules read and compared with the declared ones, so that rules
        changed in place make the node ``drifted`` like any other setting.

        Raises:
            ConfigError: Another project (another state database) deploys
                this fleet and environment on the same runtime.
        """
        nodes = self.backend.list_nodes()
        self._refuse_foreign(nodes)
        flows = {d.name: d.config.get("flows") for d in desired}
        observed = [
            self.backend.with_facts(n, flows.get(n.service or ""))
            if self.owns(n)
            else n
            for n in nodes
        ]
        return observed, dict(journal.recorded_facts())

    def own_nodes(self) -> list[ActualNode]:
        """This project's nodes of the environment (without live facts).

        Raises:
            ConfigError: Another project deploys this fleet and environment
                on the same runtime.
        """
        nodes = self.backend.list_nodes(self.environment)
        self._refuse_foreign(nodes)
        return [n for n in nodes if self.owns(n)]

    def _refuse_foreign(self, nodes: list[ActualNode]) -> None:
        # Planning would replace the other project's nodes as unrecorded,
        # and both would share networks named after the fleet: refuse.
        foreign = [
            n
            for n in nodes
            if n.deployed_as(self.fleet.name, self.environment) and not self.owns(n)
        ]
        if not foreign:
            return
        owner = foreign[0].state_id or ""
        raise ConfigError(
            f"fleet {self.fleet.name!r} environment {self.environment!r} on this "
            f"runtime is deployed by another zerodrift project (state {owner[:12]}): "
            f"{len(foreign)} node(s) such as {foreign[0].name}",
            hint="give this project another fleet name, or its own podman storage "
            "(ZERODRIFT_PODMAN_STORAGE=private); if that project's state is lost, "
            "remove its nodes: podman rm -f $(podman ps -aq --filter "
            f"label={LABEL_STATE}={owner})",
            location=Location(SPEC_FILE, field="name"),
            reference="environment-taken",
        )

    def plan(
        self, *, prune: bool = False, replace: Collection[str] = ()
    ) -> tuple[Plan, list[DesiredService]]:
        """Compute the plan for the environment (reads the runtime, changes nothing).

        ``replace`` names services whose every node is replaced regardless.

        Raises:
            ConfigError: ``replace`` names a service the spec does not declare.
        """
        unknown = sorted(set(replace) - set(self.fleet.services))
        if unknown:
            raise ConfigError(
                f"--replace names no service of the spec: {', '.join(unknown)}",
                hint=f"declared: {', '.join(sorted(self.fleet.services))}",
                reference="unknown-service",
            )
        desired = self.desired()
        actual, recorded = self.observe(Journal(self.db, self.environment), desired)
        plan = plan_environment(
            desired,
            actual,
            fleet=self.fleet.name,
            environment=self.environment,
            now=time.time(),
            recorded_facts=recorded,
            prune=prune,
            replace=frozenset(replace),
        )
        return plan, desired

    # --- applying -----------------------------------------------------------

    def apply(
        self,
        *,
        prune: bool = False,
        replace: Collection[str] = (),
        progress: Callable[[str], None] = lambda _line: None,
        kind: str = "apply",
    ) -> tuple[Plan, ApplyResult]:
        """Plan and apply under the environment lock, journalling each step.

        Raises:
            OperationalError: Another apply holds the lock, or the runtime
                failed.
            VerificationError: An image is not trusted for the environment.
        """
        with environment_lock(self.db, self.state_dir, self.environment):
            journal = Journal(self.db, self.environment)
            for run_id in journal.interrupt_stale_runs():
                self.record(
                    f"{kind}.interrupted-run",
                    self.environment,
                    {"run_id": run_id},
                )
                progress(f"previous run {run_id[:8]} was interrupted; converging")
            plan, desired = self.plan(prune=prune, replace=replace)
            journal.start(kind, self.spec_digest, self.git_commit)
            details: dict[str, Any] = {"run_id": journal.run_id, "plan": plan.counts()}
            if replace:
                details["replace_requested"] = sorted(replace)
            self.record(f"{kind}.started", self.environment, details)
            result = self._run(journal, plan, desired, progress)
            self.record(f"{kind}.finished", self.environment, result.to_dict())
            return plan, result

    def execute(
        self,
        actions: list[Action],
        *,
        kind: str,
        progress: Callable[[str], None] = lambda _line: None,
    ) -> ApplyResult:
        """Carry out chosen actions (not a plan of the whole environment).

        Used by incident response, which creates a replacement node and
        later destroys the drifted one: each runs as one journalled run under
        the environment lock, with the same image verification as apply.

        Raises:
            OperationalError: Another apply holds the lock, or the runtime
                failed.
            VerificationError: An image is not trusted for the environment.
        """
        with environment_lock(self.db, self.state_dir, self.environment):
            journal = Journal(self.db, self.environment)
            desired = self.desired()
            plan = Plan(self.environment, list(actions))
            journal.start(kind, self.spec_digest, self.git_commit)
            return self._run(journal, plan, desired, progress)

    def _run(
        self,
        journal: Journal,
        plan: Plan,
        desired: list[DesiredService],
        progress: Callable[[str], None],
    ) -> ApplyResult:
        """Verify and load images, carry out ``plan``, and close the journal."""
        try:
            self._prepare_images(plan, desired, progress)
            executor = Executor(
                self.backend,
                journal,
                self.secrets,
                self.record,
                progress,
                fleet=self.fleet.name,
                state=self.state_id,
            )
            result = executor.apply(plan, desired)
        except BaseException as exc:
            journal.finish("failed", {"error": str(exc)[:500]})
            raise
        journal.finish("succeeded" if result.ok else "failed", result.to_dict())
        return result

    def _prepare_images(
        self,
        plan: Plan,
        desired: list[DesiredService],
        progress: Callable[[str], None],
    ) -> None:
        """Verify, then load, every image a node will be created from."""
        needed = {a.service for a in plan.actions if a.kind in ("create", "replace")}
        verifier = self.verifier or RefuseUnverified()
        seen: set[str] = set()
        for want in desired:
            if want.name not in needed or want.image_digest in seen:
                continue
            seen.add(want.image_digest)
            image = ResolvedImage(want.image, want.image_digest)
            verifier.verify(image, self.environment)
            self.record(
                "image.verified",
                f"{want.image}@{want.image_digest}",
                {"environment": self.environment, "verifier": type(verifier).__name__},
            )
            self.backend.load_image(
                runtime_ref(want.image_digest),
                want.image_digest,
                functools.partial(self.source.export, want.image_digest),
            )
            progress(
                f"image {want.image}@{want.image_digest[:19]}… verified and loaded"
            )
