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
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

__all__ = [
    "SPEC_VERSION",
    "CircuitBreaker",
    "Compliance",
    "CopyItem",
    "Environment",
    "Fleet",
    "Flow",
    "GATE_RULES",
    "GateWaiver",
    "HealthCheck",
    "Image",
    "CommitPolicy",
    "DEFAULT_IMMUTABLE_TYPES",
    "Policy",
    "PolicyOverride",
    "Port",
    "Resources",
    "RuleMode",
    "ResponseMode",
    "Rollout",
    "Secret",
    "Service",
    "ServiceOverride",
    "TerraformPolicy",
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


class _FlowShorthandSchema:
    """Let the JSON Schema accept the ``service:port`` shorthand as well."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "anyOf": [
                handler(core_schema),
                {
                    "type": "string",
                    "pattern": r"^[a-z][a-z0-9-]{0,62}:([a-z][a-z0-9-]{0,62}|\d+)$",
                    "description": "<service>:<port name or number>",
                },
            ]
        }


FlowItem = Annotated[
    Flow, BeforeValidator(Flow.parse_shorthand), _FlowShorthandSchema()
]


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


class CircuitBreaker(_Model):
    """When drift keeps coming back, stop replacing and keep the evidence."""

    drifts: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="incidents of one service within the window that open it",
    )
    window: Duration = Field(
        default=3600, description="how far back incidents count (e.g. 1h)"
    )


class Environment(_Model):
    """A deployment target (dev, staging, prod...)."""

    runtime: str = Field(
        default="podman://",
        pattern=r"^(podman|kubernetes)://.*$",
        description="podman:// (private service), podman:///<socket>, "
        "or kubernetes://<context>",
    )
    response: ResponseMode = "alert"
    circuit_breaker: CircuitBreaker = Field(default_factory=CircuitBreaker)
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


# --- Gate policy ----------------------------------------------------------

RuleMode = Literal["enforce", "warn", "off"]

GateRuleId = Literal[
    "spec-valid",
    "spec-committed",
    "commit-signed",
    "waiver-expired",
    "image-in-store",
    "image-signed",
    "image-provenance",
    "image-sbom",
    "image-golden-manifest",
    "image-provenance-ancestor",
    "image-promotion",
    "image-hardening",
    "plan-immutable-update",
    "plan-inventory",
    "manifest-image-digest",
    "manifest-privilege-escalation",
    "manifest-privileged",
    "manifest-host-path",
    "manifest-readonly-root",
    "manifest-pods-exec",
]

GATE_RULES: tuple[str, ...] = get_args(GateRuleId)
"""Identifiers of the rules ``zerodrift gate`` evaluates (see docs/gate.md)."""

# Compute resources whose in-place update breaks "replace, never patch".
DEFAULT_IMMUTABLE_TYPES: tuple[str, ...] = (
    "aws_instance",
    "aws_launch_template",
    "aws_launch_configuration",
    "aws_autoscaling_group",
    "aws_ecs_task_definition",
    "aws_lambda_function",
    "google_compute_instance",
    "google_compute_instance_template",
    "google_compute_instance_group_manager",
    "google_compute_region_instance_group_manager",
    "google_cloud_run_v2_service",
    "azurerm_linux_virtual_machine",
    "azurerm_windows_virtual_machine",
    "azurerm_virtual_machine",
    "azurerm_linux_virtual_machine_scale_set",
    "azurerm_windows_virtual_machine_scale_set",
    "azurerm_orchestrated_virtual_machine_scale_set",
    "azurerm_container_group",
)


class GateWaiver(_Model):
    """An accepted gate failure: names a rule, a reason and an expiry date.

    An expired waiver no longer applies and is itself reported as a failure
    (rule ``waiver-expired``), so stale exceptions cannot linger.
    """

    rule: GateRuleId = Field(description="the rule identifier this waiver accepts")
    target: str = Field(
        default="*",
        min_length=1,
        description="what the waiver covers, as shown in gate results "
        "(image name, resource address, Kind/namespace/name#container); "
        "'*' matches any run of characters",
    )
    environments: list[Name] = Field(
        default_factory=list, description="limit to these environments; empty = all"
    )
    reason: str = Field(min_length=10, description="why the risk is accepted")
    expires: date = Field(description="last day the waiver applies (UTC)")


class TerraformPolicy(_Model):
    """What the gate accepts in Terraform plans."""

    immutable_types: list[str] = Field(
        default_factory=lambda: list(DEFAULT_IMMUTABLE_TYPES),
        description="resource types that must be replaced, never updated in place",
    )
    extra_immutable_types: list[str] = Field(
        default_factory=list,
        description="added to immutable_types (keeps the defaults)",
    )
    inventory: list[str] | None = Field(
        default=None,
        description="declared resource addresses a plan may change ('*' is a "
        "wildcard; 'aws_instance.web' also covers aws_instance.web[0]); unset "
        "means no inventory is declared and the rule is skipped",
    )

    def immutable(self) -> frozenset[str]:
        """Every resource type that counts as immutable."""
        return frozenset(self.immutable_types) | frozenset(self.extra_immutable_types)


class CommitPolicy(_Model):
    """Who may sign the commit the gate runs on."""

    allowed_signers: str | None = Field(
        default=None,
        description="SSH allowed-signers file (git's gpg.ssh.allowedSignersFile "
        "format), relative to the project",
    )
    allowed_keys: list[str] = Field(
        default_factory=list,
        description="OpenPGP fingerprints or SSH key fingerprints (SHA256:...) "
        "allowed to sign; empty = any key git reports as good",
    )


class PolicyOverride(_Model):
    """Rule modes for one environment, applied over the policy's own."""

    rules: dict[GateRuleId, RuleMode] = Field(default_factory=dict)


class Policy(_Model):
    """What ``zerodrift gate`` enforces; every setting has a safe default."""

    rules: dict[GateRuleId, RuleMode] = Field(
        default_factory=dict,
        description="rule -> enforce | warn | off; unlisted rules keep their "
        "default (enforce, except commit-signed which is off)",
    )
    environments: dict[Name, PolicyOverride] = Field(
        default_factory=dict, description="per-environment rule modes"
    )
    waivers: list[GateWaiver] = Field(default_factory=list)
    promotion: dict[Name, list[Name]] = Field(
        default_factory=dict,
        description="environment -> environments where the same image digest "
        "must have been deployed and verified first (e.g. prod: [staging])",
    )
    terraform: TerraformPolicy = Field(default_factory=TerraformPolicy)
    commits: CommitPolicy = Field(default_factory=CommitPolicy)


SeverityName = Literal["critical", "high", "medium", "low", "info"]


def _default_analysis_times() -> dict[SeverityName, int]:
    return {
        "critical": 4 * 3600,
        "high": 24 * 3600,
        "medium": 3 * 86400,
        "low": 7 * 86400,
        "info": 30 * 86400,
    }


def _default_response_times() -> dict[SeverityName, int]:
    return {
        "critical": 3600,
        "high": 4 * 3600,
        "medium": 86400,
        "low": 3 * 86400,
        "info": 7 * 86400,
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
    respond_within: dict[SeverityName, Duration] = Field(
        default_factory=_default_response_times,
        description="how soon after detection an incident of each severity (its "
        "most severe finding) must be resolved: node replaced and verified",
    )
    recovery_drill_interval: Duration = Field(
        default=30 * 86400,
        description="every environment must pass a recovery drill this often",
    )
    integrity_check_interval: Duration = Field(
        default=86400,
        description="every deployed environment and every host baseline must be "
        "checked for drift this often (zerodrift check, zerodrift fim check)",
    )


class Fleet(_Model):
    """The whole fleet spec."""

    version: Literal[1] = Field(description="spec format version")
    name: Name
    images: dict[Name, Image] = Field(default_factory=dict)
    services: dict[Name, Service] = Field(default_factory=dict)
    environments: dict[Name, Environment] = Field(default_factory=dict)
    trust: Trust = Field(default_factory=Trust)
    policy: Policy = Field(default_factory=Policy)
    compliance: Compliance = Field(default_factory=Compliance)
