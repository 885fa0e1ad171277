"""Gather the gate's inputs from disk, git and the image store, then evaluate.

This is the IO edge around :func:`zerodrift.gate.engine.evaluate`: it reads
the spec, plans and manifests, asks git and the evidence source, and hands
plain data to the pure core.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path

from zerodrift.errors import ConfigError, Location
from zerodrift.gate.engine import GateInput, evaluate, images_for, rule_mode
from zerodrift.gate.evidence import ImageEvidence, ImageFacts, collect_image_facts
from zerodrift.gate.kubernetes import Manifest, find_manifest_files, load_manifests
from zerodrift.gate.results import GateReport
from zerodrift.gate.source import (
    SourceFacts,
    commit_signature,
    is_ancestor,
    source_facts,
)
from zerodrift.gate.terraform import load_plan
from zerodrift.protect.keys import load_public_key
from zerodrift.spec import Fleet, SpecError, SpecLocator, parse_spec
from zerodrift.spec.loader import MAX_SPEC_BYTES

__all__ = ["GateRequest", "run_gate"]

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateRequest:
    """What to gate.

    Attributes:
        root: The project folder (holds ``fleet.yaml``).
        environment: Environment to gate, or ``None`` for all.
        plans: Terraform plan JSON files.
        manifests: Kubernetes manifest files or folders.
        evidence: The image store, or ``None`` when none is available.
        today: Date waivers are judged against; defaults to today (UTC).
    """

    root: Path
    environment: str | None = None
    plans: Sequence[Path] = ()
    manifests: Sequence[Path] = ()
    evidence: ImageEvidence | None = None
    today: date | None = None


def _shown(path: Path) -> str:
    """Name ``path`` as reports should: relative to the current folder if inside."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path.absolute()) if relative.startswith("..") else relative


def run_gate(request: GateRequest) -> GateReport:
    """Read every input of ``request`` and evaluate the gate.

    Raises:
        ConfigError: A plan or manifest cannot be read or parsed, the spec
            file is missing, or the environment is not declared.
        OperationalError: git is missing or hangs.
    """
    spec_path = request.root / "fleet.yaml"
    spec_name = _shown(spec_path)
    fleet, problems, locate = _read_spec(spec_path, spec_name)
    if fleet is not None and request.environment is not None:
        _check_environment(fleet, request.environment)
    plans = [load_plan(p, _shown(p)) for p in request.plans]
    manifests = _read_manifests(request.manifests)
    today = request.today or datetime.now(UTC).date()
    source = _source(request, fleet) if fleet is not None else None
    images: dict[str, ImageFacts] | None = None
    trusted: frozenset[str] = frozenset()
    if fleet is not None and request.evidence is not None:
        names = images_for(fleet, request.environment)
        images = _with_ancestry(
            request.root, collect_image_facts(request.evidence, names)
        )
        trusted = _trusted_key_ids(request.root, fleet, request.environment)
    gate = GateInput(
        spec_name=spec_name,
        fleet=fleet,
        today=today,
        spec_problems=tuple(problems),
        locate=locate,
        environment=request.environment,
        source=source,
        images=images,
        trusted_key_ids=trusted,
        plans=plans,
        manifests=manifests,
    )
    return evaluate(gate)


def _read_spec(
    path: Path, name: str
) -> tuple[Fleet | None, list[tuple[Location, str, str | None]], SpecLocator | None]:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            f"cannot read the fleet spec {name}: {exc.strerror}",
            hint="run the gate in the project folder, or pass --project DIR",
            reference="spec-missing",
        ) from exc
    try:
        loaded = parse_spec(raw, name, path=path)
    except SpecError as exc:
        return None, list(exc.problems), None
    except ConfigError as exc:
        where = exc.location or Location(name)
        return None, [(where, exc.message, exc.hint)], None
    return loaded.fleet, [], SpecLocator(loaded.document, name)


def _check_environment(fleet: Fleet, environment: str) -> None:
    if environment not in fleet.environments:
        raise ConfigError(
            f"unknown environment {environment!r}",
            hint="declared: " + (", ".join(sorted(fleet.environments)) or "none"),
            reference="unknown-environment",
        )


def _read_manifests(roots: Sequence[Path]) -> list[Manifest]:
    if not roots:
        return []
    files = find_manifest_files(roots)
    manifests = [m for f in files for m in load_manifests(f, _shown(f))]
    if not manifests:
        shown = ", ".join(_shown(r) for r in roots)
        raise ConfigError(
            f"no Kubernetes objects found in {shown}",
            hint="pass rendered manifests (YAML or JSON with apiVersion and kind)",
            location=Location(shown),
            reference="manifests-empty",
        )
    return manifests


def _depends_on(fleet: Fleet) -> list[str]:
    """Files (relative to the project) whose content the spec's meaning uses."""
    paths = ["fleet.yaml"]
    paths += [item.src for image in fleet.images.values() for item in image.copy_]
    paths += list(fleet.trust.keys.values())
    if fleet.policy.commits.allowed_signers:
        paths.append(fleet.policy.commits.allowed_signers)
    return paths


def _source(request: GateRequest, fleet: Fleet) -> SourceFacts:
    facts = source_facts(request.root, _depends_on(fleet))
    facts = replace(facts, dirty=tuple(_shown(request.root / p) for p in facts.dirty))
    if rule_mode(fleet.policy, "commit-signed", request.environment) == "off":
        return facts
    if facts.head is None:
        return facts
    signers = fleet.policy.commits.allowed_signers
    path = request.root / signers if signers else None
    return replace(facts, signature=commit_signature(request.root, path))


def _with_ancestry(root: Path, facts: dict[str, ImageFacts]) -> dict[str, ImageFacts]:
    answers: dict[str, bool] = {}
    for item in facts.values():
        if item.commit is not None and item.commit not in answers:
            answers[item.commit] = is_ancestor(root, item.commit)
    return {
        name: replace(item, commit_is_ancestor=answers.get(item.commit or ""))
        for name, item in facts.items()
    }


def _trusted_key_ids(
    root: Path, fleet: Fleet, environment: str | None
) -> frozenset[str]:
    trust = fleet.trust
    names = trust.environments.get(environment, []) if environment else list(trust.keys)
    return frozenset(load_public_key(n, root / trust.keys[n]).keyid for n in names)
