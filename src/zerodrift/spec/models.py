"""Typed models of the fleet spec (``fleet.yaml``).

The spec is the single source of truth: the asset register (Identify), the
build recipes (Protect), the desired runtime state (reconcile) and the trust
policy (Govern). Models are frozen and reject unknown keys, so a typo is an
error rather than a silently ignored setting.

Named things (images, services, environments, keys) are mapping keys, which
makes duplicate names a YAML-level error that the loader reports with its
position. Cross references are checked by :func:`zerodrift.spec.check_references`
after the models validate, so every problem can point at its own line.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

__all__ = [
    "SPEC_VERSION",
    "Compliance",
    "CopyItem",
    "Environment",
    "Fleet",
    "Flow",
    "HealthCheck",
    "Image",
    "Port",
    "Resources",
    "ResponseMode",
    "Rollout",
    "Secret",
    "Service",
    "ServiceOverride",
    "Trust",
    "Volume",
    "Waiver",
    "parse_duration",
    "parse_size",
]

SPEC_VERSION = 1

_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"
Name = Annotated[str, StringConstraints(pattern=_NAME_PATTERN)]
AbsPath = Annotated[str, StringConstraints(pattern=r"^/[^\x00]*$", max_length=4096)]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_RE = re.compile(r"^(\d+)([smhdw])$")
_SIZE_UNITS = {
    "": 1,
    "k": 1000,
    "ki": 1024,
    "m": 1000**2,
    "mi": 1024**2,
    "g": 1000**3,
    "gi": 1024**3,
}
_SIZE_RE = re.compile(r"^(\d+)\s*([kKmMgG]i?)?[bB]?$")


def parse_duration(value: Any) -> Any:
    """Turn ``"30s"``, ``"5m"``, ``"12h"``, ``"7d"`` or ``"2w"`` into seconds.

    Integers pass through as seconds. Anything else is returned unchanged so
    that the model reports it as the wrong type.
    """
    if isinstance(value, str):
        match = _DURATION_RE.match(value.strip())
        if match is None:
            raise ValueError("expected a duration such as 30s, 5m, 12h, 7d or 2w")
        return int(match.group(1)) * _DURATION_UNITS[match.group(2)]
    return value


def parse_size(value: Any) -> Any:
    """Turn ``"128Mi"``, ``"1G"`` or ``"512k"`` into bytes; integers pass through."""
    if isinstance(value, str):
        match = _SIZE_RE.match(value.strip())
        if match is None:
            raise ValueError("expected a size such as 64Mi, 1Gi or 512k")
        unit = (match.group(2) or "").lower()
        return int(match.group(1)) * _SIZE_UNITS[unit]
    return value


Duration = Annotated[
    int,
    BeforeValidator(parse_duration),
    Field(ge=0),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": r"^\d+[smhdw]$"},
            ],
            "description": "seconds, or a number with a unit: s, m, h, d, w",
        }
    ),
]
Size = Annotated[
    int,
    BeforeValidator(parse_size),
    Field(ge=0),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": r"^\d+\s*([kKmMgG]i?)?[bB]?$"},
            ],
            "description": "bytes, or a number with a unit: k, Ki, M, Mi, G, Gi",
        }
    ),
]

ResponseMode = Literal["auto", "approve", "alert"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- Images ---------------------------------------------------------------


class CopyItem(_Model):
    """A file or folder copied from the repository into the image."""

    src: str = Field(description="path relative to the project root")
    dest: AbsPath = Field(description="absolute path inside the image")
    mode: str | None = Field(
        default=None,
        pattern=r"^0?[0-7]{3,4}$",
        description="octal mode for files; folders keep 0755 unless given",
    )
    owner: str = Field(default="0:0", pattern=r"^\d+:\d+$", description="uid:gid")


class Waiver(_Model):
    """An accepted hardening finding: needs a reason and an expiry date."""

    check: str = Field(description="identifier of the hardening check")
    path: str | None = Field(default=None, description="limit to one path")
    reason: str = Field(min_length=10)
    expires: date


class Hardening(_Model):
    """What the hardening checks forbid in an image."""

    allow_shell: bool = False
    allow_package_manager: bool = False
    allow_root: bool = False
    waivers: list[Waiver] = Field(default_factory=list)


_BASE_PATTERN = (
    r"^(scratch|debian:[a-z]+"
    r"|oci-layout:[^@]+@sha256:[0-9a-f]{64}|oci-archive:[^@]+@sha256:[0-9a-f]{64})$"
)


class Image(_Model):
    """A build recipe: how to produce one hardened, reproducible image."""

    base: str = Field(
        default="scratch",
        pattern=_BASE_PATTERN,
        description=(
            "scratch, debian:<suite> (built with mmdebstrap), or "
            "oci-layout:<dir>@sha256:<digest> / oci-archive:<file>@sha256:<digest>"
        ),
    )
    variant: Literal["extract", "essential", "required", "minbase", "apt"] = "extract"
    packages: list[str] = Field(default_factory=list)
    copy_: list[CopyItem] = Field(default_factory=list, alias="copy")
    user: str = Field(default="65534:65534", pattern=r"^\d+(:\d+)?$")
    entrypoint: list[str] = Field(default_factory=list)
    cmd: list[str] = Field(default_factory=list)
    env: dict[EnvName, str] = Field(default_factory=dict)
    workdir: AbsPath = "/"
    writable: list[AbsPath] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    hardening: Hardening = Field(default_factory=Hardening)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --- Services -------------------------------------------------------------


class Port(_Model):
    """A port a service listens on."""

    name: Name
    port: int = Field(ge=1, le=65535)
    protocol: Literal["tcp", "udp"] = "tcp"


class Flow(_Model):
    """A declared data flow: this service may connect to ``service`` on ``port``."""

    service: Name
    port: Name | int

    @classmethod
    def parse_shorthand(cls, value: Any) -> Any:
        """Accept ``"api:http"`` as shorthand for ``{service: api, port: http}``."""
        if isinstance(value, str) and ":" in value:
            service, _, port = value.partition(":")
            return {"service": service, "port": int(port) if port.isdigit() else port}
        return value


FlowItem = Annotated[Flow, BeforeValidator(Flow.parse_shorthand)]


class Secret(_Model):
    """A secret injected at run time; its value never enters images or logs."""

    name: Name
    source: str = Field(
        pattern=r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+|sealed:.+)$",
        description="env:VAR, file:<path>, or sealed:<repo file encrypted to the key>",
    )
    target: str | None = Field(
        default=None,
        description="environment variable name, or an absolute file path; "
        "defaults to /run/secrets/<name>",
    )


class Volume(_Model):
    """A persistent data volume that survives node replacement."""

    name: Name
    path: AbsPath
    read_only: bool = False


class HealthCheck(_Model):
    """How to tell that a node is ready; exactly one probe kind."""

    command: list[str] | None = None
    http: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9-]+(/.*)?$",
        description="<port name>/<path>, e.g. http/healthz",
    )
    tcp: Name | None = Field(default=None, description="port name")
    interval: Duration = 5
    timeout: Duration = 3
    retries: int = Field(default=3, ge=1, le=100)
    start_period: Duration = 0

    @field_validator("command")
    @classmethod
    def _command_not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("command must not be empty")
        return value

    def probe_kinds(self) -> list[str]:
        """Return the probe kinds that are set (valid specs set exactly one)."""
        return [k for k in ("command", "http", "tcp") if getattr(self, k) is not None]


class Resources(_Model):
    """Resource limits for each node."""

    memory: Size | None = None
    cpus: float | None = Field(default=None, gt=0, le=512)
    pids: int | None = Field(default=256, ge=1)


class Rollout(_Model):
    """How replacement proceeds: surge first, never below availability."""

    max_surge: int = Field(default=1, ge=1)
    max_unavailable: int = Field(default=0, ge=0)
    health_timeout: Duration = 60


class Service(_Model):
    """A long-running component, deployed as ``replicas`` identical nodes."""

    image: Name
    replicas: int = Field(default=1, ge=0, le=1000)
    ports: list[Port] = Field(default_factory=list)
    env: dict[EnvName, str] = Field(default_factory=dict)
    secrets: list[Secret] = Field(default_factory=list)
    volumes: list[Volume] = Field(default_factory=list)
    health: HealthCheck | None = None
    writable: list[AbsPath] = Field(default_factory=list)
    talks_to: list[FlowItem] = Field(default_factory=list)
    max_age: Duration | None = None
    capabilities: list[Annotated[str, StringConstraints(pattern=r"^[A-Z_]+$")]] = Field(
        default_factory=list
    )
    resources: Resources = Field(default_factory=Resources)
    rollout: Rollout = Field(default_factory=Rollout)
    response: ResponseMode | None = Field(
        default=None, description="overrides the environment's response policy"
    )
    privileged: Literal[False] = Field(
        default=False, description="always false: privileged nodes are refused"
    )


class ServiceOverride(_Model):
    """Per-environment changes to a service."""

    replicas: int | None = Field(default=None, ge=0, le=1000)
    env: dict[EnvName, str] = Field(default_factory=dict)
    resources: Resources | None = None
    max_age: Duration | None = None
    response: ResponseMode | None = None


class Environment(_Model):
    """A deployment target (dev, staging, prod...)."""

    runtime: str = Field(
        default="podman://",
        pattern=r"^(podman|kubernetes)://.*$",
        description="podman:// (private service), podman:///<socket>, "
        "or kubernetes://<context>",
    )
    response: ResponseMode = "alert"
    overrides: dict[Name, ServiceOverride] = Field(default_factory=dict)
    description: str | None = None


class Trust(_Model):
    """Which keys may sign artifacts, and for which environments."""

    keys: dict[Name, str] = Field(
        default_factory=dict,
        description="key name -> public key file (PEM), relative to the project",
    )
    environments: dict[Name, list[Name]] = Field(
        default_factory=dict,
        description="environment -> names of keys allowed to sign for it",
    )


SeverityName = Literal["critical", "high", "medium", "low", "info"]


def _default_analysis_times() -> dict[SeverityName, int]:
    return {
        "critical": 4 * 3600,
        "high": 24 * 3600,
        "medium": 3 * 86400,
        "low": 7 * 86400,
        "info": 30 * 86400,
    }


class Compliance(_Model):
    """What compliance reports expect: evidence freshness and response times."""

    attestations: str = Field(
        default="compliance/attestations.yaml",
        description="the attestations file, relative to the project root",
    )
    inventory_max_age: Duration = Field(
        default=86400,
        description="the newest inventory snapshot must be younger than this",
    )
    analyse_within: dict[SeverityName, Duration] = Field(
        default_factory=_default_analysis_times,
        description="how soon a finding of each severity must leave 'open'",
    )


class Fleet(_Model):
    """The whole fleet spec."""

    version: Literal[1] = Field(description="spec format version")
    name: Name
    images: dict[Name, Image] = Field(default_factory=dict)
    services: dict[Name, Service] = Field(default_factory=dict)
    environments: dict[Name, Environment] = Field(default_factory=dict)
    trust: Trust = Field(default_factory=Trust)
    compliance: Compliance = Field(default_factory=Compliance)
