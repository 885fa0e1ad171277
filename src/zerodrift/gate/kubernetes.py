"""Kubernetes manifests and the rules over them.

Manifests are read with their positions so every result points at the
line of the offending key. Reading is strict: invalid YAML, unrendered Helm
templates and oversized files are errors naming the file and position; a
manifest folder with no Kubernetes object at all is an error too, so a wrong
path cannot pass the gate.

Workloads checked: Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet,
ReplicationController, Job and CronJob (containers, init containers and
ephemeral containers); RBAC: Role and ClusterRole. ``kind: List`` is opened.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from zerodrift.errors import ConfigError, Location
from zerodrift.gate.results import Check

__all__ = [
    "MAX_DOCUMENTS",
    "MAX_MANIFEST_BYTES",
    "Manifest",
    "check_manifests",
    "find_manifest_files",
    "load_manifests",
    "parse_manifests",
]

MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_DOCUMENTS = 10_000
_SUFFIXES = (".yaml", ".yml", ".json")
_DIGEST_RE = re.compile(r"@sha256:[0-9a-f]{64}$")
# Helm syntax that never appears in plain manifests: trim markers and the
# chart objects and functions. Plain ``{{ }}`` also occurs in alerting
# templates stored in ConfigMaps, so it alone is not taken as Helm.
_HELM_RE = re.compile(
    r"\{\{-|-\}\}|\{\{\s*(?:\.Values|\.Release|\.Chart|\.Capabilities|\.Files"
    r"|include\b|template\b|define\b|toYaml\b|tpl\b)"
)
_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_CONTAINER_KEYS = ("initContainers", "containers", "ephemeralContainers")
_EXEC_VERBS = frozenset({"create", "get", "*"})


@dataclass(frozen=True)
class Manifest:
    """One Kubernetes object read from a file.

    Attributes:
        path: The file, as reports name it.
        kind: The object's kind.
        name: ``metadata.name``.
        namespace: ``metadata.namespace``, when set.
        body: The object, with ruamel position data.
        line: Line where the object starts.
    """

    path: str
    kind: str
    name: str
    namespace: str | None
    body: Any
    line: int

    @property
    def ref(self) -> str:
        """``Kind/namespace/name`` (``Kind/name`` without a namespace)."""
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"

    def at(self, node: Any, key: str | int | None = None) -> Location:
        """Location of ``key`` in ``node`` (or of ``node`` itself)."""
        line = _line_of(node, key)
        return Location(self.path, line or self.line)


def _line_of(node: Any, key: str | int | None) -> int | None:
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        if key is None:
            return int(lc.line) + 1
        if isinstance(key, int):
            return int(lc.item(key)[0]) + 1
        return int(lc.key(key)[0]) + 1
    except (KeyError, IndexError, TypeError):
        return int(lc.line) + 1


def find_manifest_files(roots: Sequence[Path]) -> list[Path]:
    """Expand folders into their manifest files (sorted); files pass through.

    Raises:
        ConfigError: A path is missing, or a folder is an unrendered Helm chart.
    """
    found: list[Path] = []
    for root in roots:
        if root.is_file():
            found.append(root)
            continue
        if not root.is_dir():
            raise ConfigError(
                f"no manifest file or folder at {root}",
                location=Location(str(root)),
                reference="manifests-missing",
            )
        if (root / "Chart.yaml").exists():
            raise _helm(Location(str(root / "Chart.yaml")))
        found += sorted(
            p for p in root.rglob("*") if p.is_file() and p.suffix in _SUFFIXES
        )
    return found


def load_manifests(path: Path, name: str | None = None) -> list[Manifest]:
    """Read every Kubernetes object of a (multi-document) YAML or JSON file.

    Raises:
        ConfigError: The file is unreadable, too large, not valid YAML, an
            unrendered Helm template, or has too many documents.
    """
    shown = name or str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            f"cannot read manifest {shown}: {exc.strerror}",
            location=Location(shown),
            reference="manifest-unreadable",
        ) from exc
    return parse_manifests(raw, shown)


def parse_manifests(raw: bytes, name: str) -> list[Manifest]:
    """Parse manifest bytes; ``name`` is how errors refer to them.

    Raises:
        ConfigError: As for :func:`load_manifests`.
    """
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ConfigError(
            f"manifest {name} is larger than {MAX_MANIFEST_BYTES // 2**20} MiB",
            hint="split it into several files",
            location=Location(name),
            reference="manifest-too-large",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"manifest {name} is not valid UTF-8",
            location=Location(name, line),
            reference="manifest-malformed",
        ) from None
    helm = _HELM_RE.search(text)
    if helm is not None:
        raise _helm(_offset_location(text, helm.start(), name))
    manifests: list[Manifest] = []
    for index, document in enumerate(_documents_or_json(text, name)):
        if index >= MAX_DOCUMENTS:
            raise ConfigError(
                f"manifest {name} has more than {MAX_DOCUMENTS} documents",
                hint="split it into several files",
                location=Location(name),
                reference="manifest-too-large",
            )
        manifests += _objects(document, name)
    return manifests


def _documents_or_json(text: str, name: str) -> Iterator[Any]:
    """YAML documents; JSON that YAML rejects (tab indentation) is read as JSON.

    JSON read this way has no positions: results point at the file.
    """
    if name.endswith(".json"):
        try:
            yield from list(_documents(text, name))
        except ConfigError:
            try:
                yield json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"manifest {name} is not valid JSON: {exc.msg}",
                    location=Location(name, exc.lineno, exc.colno),
                    reference="manifest-malformed",
                ) from None
        return
    yield from _documents(text, name)


def _documents(text: str, name: str) -> Iterator[Any]:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        yield from yaml.load_all(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        near = text.splitlines()[max(0, (line or 1) - 2) : (line or 1) + 1]
        if any("{{" in candidate for candidate in near):
            raise _helm(Location(name, line, column)) from None
        raise ConfigError(
            f"manifest {name} is not valid YAML: {exc.problem or exc.context}",
            hint="check indentation and quoting around this position",
            location=Location(name, line, column),
            reference="manifest-malformed",
        ) from None
    except YAMLError as exc:
        raise ConfigError(
            f"manifest {name} is not valid YAML: {exc}",
            location=Location(name),
            reference="manifest-malformed",
        ) from None


def _objects(document: Any, name: str) -> list[Manifest]:
    if not isinstance(document, dict):
        return []
    kind, api = document.get("kind"), document.get("apiVersion")
    if not isinstance(kind, str) or not isinstance(api, str):
        return []
    if kind == "List" or kind.endswith("List"):
        items = document.get("items") or []
        return [m for item in items for m in _objects(item, name)]
    metadata = document.get("metadata") or {}
    return [
        Manifest(
            path=name,
            kind=kind,
            name=str(metadata.get("name") or metadata.get("generateName") or "?"),
            namespace=metadata.get("namespace"),
            body=document,
            line=(_line_of(document, None) or 1),
        )
    ]


def _offset_location(text: str, offset: int, name: str) -> Location:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return Location(name, line, column)


def _helm(location: Location) -> ConfigError:
    return ConfigError(
        "this is a Helm template, not a rendered manifest",
        hint="render it first: helm template RELEASE CHART -f values.yaml "
        "> rendered.yaml, then pass --manifests rendered.yaml",
        location=location,
        reference="manifest-unrendered-template",
    )


# --- Rules ------------------------------------------------------------------


def check_manifests(manifests: Sequence[Manifest]) -> list[Check]:
    """Evaluate the ``manifest-*`` rules over ``manifests``."""
    checks: list[Check] = []
    for manifest in manifests:
        spec_path = _POD_SPEC_PATHS.get(manifest.kind)
        if spec_path is not None:
            pod = _dig(manifest.body, spec_path)
            if isinstance(pod, dict):
                checks += _check_pod(manifest, pod)
        elif manifest.kind in ("Role", "ClusterRole"):
            checks.append(_check_role(manifest))
    return checks


def _dig(node: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _containers(pod: dict[str, Any]) -> Iterator[tuple[Any, int, dict[str, Any]]]:
    for key in _CONTAINER_KEYS:
        items = pod.get(key) or []
        for index, container in enumerate(items):
            if isinstance(container, dict):
                yield items, index, container


def _check_pod(manifest: Manifest, pod: dict[str, Any]) -> list[Check]:
    checks = [_check_host_paths(manifest, pod)]
    for items, index, container in _containers(pod):
        target = f"{manifest.ref}#{container.get('name', index)}"
        where = manifest.at(items, index)
        checks.append(_check_image(manifest, target, container, where))
        context = container.get("securityContext")
        if not isinstance(context, dict):
            context = {}
        checks += _check_security_context(manifest, target, context, where)
    return checks


def _check_image(
    manifest: Manifest, target: str, container: dict[str, Any], where: Location
) -> Check:
    image = str(container.get("image", ""))
    location = manifest.at(container, "image") if "image" in container else where
    if _DIGEST_RE.search(image):
        return Check(
            "manifest-image-digest", target, True, f"{image} is pinned", location
        )
    return Check(
        "manifest-image-digest",
        target,
        False,
        f"image {image or '<none>'!r} is referenced by tag, not by digest",
        location,
        "pin it: name@sha256:<digest> (the digest 'zerodrift build' printed)",
    )


def _check_security_context(
    manifest: Manifest, target: str, context: dict[str, Any], where: Location
) -> list[Check]:
    def located(key: str) -> Location:
        return manifest.at(context, key) if key in context else where

    escalation = context.get("allowPrivilegeEscalation")
    privileged = context.get("privileged")
    read_only = context.get("readOnlyRootFilesystem")
    return [
        Check(
            "manifest-privilege-escalation",
            target,
            escalation is False,
            "allowPrivilegeEscalation is false"
            if escalation is False
            else f"allowPrivilegeEscalation is {_shown(escalation)}, not false",
            located("allowPrivilegeEscalation"),
            "set securityContext.allowPrivilegeEscalation: false",
        ),
        Check(
            "manifest-privileged",
            target,
            privileged is not True,
            "runs privileged" if privileged is True else "not privileged",
            located("privileged"),
            "remove securityContext.privileged: true",
        ),
        Check(
            "manifest-readonly-root",
            target,
            read_only is True,
            "root filesystem is read-only"
            if read_only is True
            else f"readOnlyRootFilesystem is {_shown(read_only)}, not true",
            located("readOnlyRootFilesystem"),
            "set securityContext.readOnlyRootFilesystem: true; mount emptyDir "
            "where the workload writes",
        ),
    ]


def _shown(value: Any) -> str:
    return "unset" if value is None else str(value).lower()


def _check_host_paths(manifest: Manifest, pod: dict[str, Any]) -> Check:
    volumes = pod.get("volumes") or []
    for index, volume in enumerate(volumes):
        if isinstance(volume, dict) and "hostPath" in volume:
            host = _dig(volume, ("hostPath", "path"))
            return Check(
                "manifest-host-path",
                manifest.ref,
                False,
                f"volume {volume.get('name', index)!r} mounts host path {host!r}",
                manifest.at(volumes, index),
                "use emptyDir, a ConfigMap, a Secret or a PersistentVolumeClaim",
            )
    return Check(
        "manifest-host-path",
        manifest.ref,
        True,
        "no hostPath volumes",
        manifest.at(manifest.body, "kind"),
    )


def _check_role(manifest: Manifest) -> Check:
    rules = manifest.body.get("rules") or []
    for index, entry in enumerate(rules):
        if isinstance(entry, dict) and _grants_exec(entry):
            verbs = ", ".join(str(v) for v in entry.get("verbs") or [])
            return Check(
                "manifest-pods-exec",
                manifest.ref,
                False,
                f"grants pods/exec ({verbs})",
                manifest.at(rules, index),
                "remove pods/exec from this rule; replace a node instead of "
                "entering it",
            )
    return Check(
        "manifest-pods-exec",
        manifest.ref,
        True,
        "does not grant pods/exec",
        manifest.at(manifest.body, "kind"),
    )


def _grants_exec(entry: dict[str, Any]) -> bool:
    groups = {str(g) for g in entry.get("apiGroups") or [""]}
    resources = {str(r) for r in entry.get("resources") or []}
    verbs = {str(v) for v in entry.get("verbs") or []}
    core = bool(groups & {"", "*"})
    exec_resource = bool(resources & {"pods/exec", "pods/*", "*"})
    return core and exec_resource and bool(verbs & _EXEC_VERBS)
