"""Load ``fleet.yaml`` into a validated :class:`~zerodrift.spec.models.Fleet`.

Every problem is reported with the file, line and column of the offending
key, found by walking ruamel.yaml's position data along the key path that
pydantic or the reference checks report. All problems are reported at once,
the way a compiler does, so a user fixes a spec in one pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from zerodrift._internal.canonical import canonical_digest
from zerodrift.errors import ConfigError, Location

# The models (pydantic) are imported by the functions that validate, so
# load_trust_keys reads the trust policy without paying for them (ADR 0044).
if TYPE_CHECKING:
    from pydantic import ValidationError

    from zerodrift.spec.models import Fleet
    from zerodrift.spec.references import FieldPath, Problem

__all__ = [
    "MAX_SPEC_BYTES",
    "LoadedSpec",
    "SpecError",
    "SpecLocator",
    "load_spec",
    "load_trust_keys",
    "parse_spec",
]

MAX_SPEC_BYTES = 10 * 1024 * 1024
_DUPLICATE = re.compile(r'found duplicate key "(.*?)" with value')
_KEY_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")


class SpecError(ConfigError):
    """The fleet spec is invalid; ``problems`` lists each located problem."""

    reference = "spec-invalid"

    def __init__(self, path: str, problems: list[tuple[Location, str, str | None]]):
        first_loc, first_msg, first_hint = problems[0]
        count = len(problems)
        summary = first_msg if count == 1 else f"{first_msg} (and {count - 1} more)"
        super().__init__(summary, hint=first_hint, location=first_loc)
        self.path = path
        self.problems = problems

    def diagnostics(self) -> str:
        """Render every problem, each with its location and hint."""
        blocks = []
        for loc, message, hint in self.problems:
            block = f"error[{self.reference}]: {message}\n  --> {loc}"
            if hint:
                block += f"\n  hint: {hint}"
            blocks.append(block)
        noun = "problem" if len(self.problems) == 1 else "problems"
        blocks.append(f"{self.path}: {len(self.problems)} {noun}")
        return "\n".join(blocks)

    def to_dict(self) -> dict[str, object]:
        """Render all problems for ``--format json``."""
        data = super().to_dict()
        data["problems"] = [
            {
                "path": loc.path,
                "line": loc.line,
                "column": loc.column,
                "field": loc.field,
                "message": msg,
                "hint": hint,
            }
            for loc, msg, hint in self.problems
        ]
        return data


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec with where it came from and its content digest.

    ``document`` is the parsed YAML with positions, for :class:`SpecLocator`.
    """

    fleet: Fleet
    path: Path
    digest: str
    document: Any = field(default=None, repr=False, compare=False)


def load_spec(path: Path) -> LoadedSpec:
    """Read, parse and validate the spec at ``path``.

    Raises:
        SpecError: The file is not a valid fleet spec (every problem listed).
        ConfigError: The file is missing, unreadable, too large or not UTF-8.
    """
    return parse_spec(_read(path), str(path), path=path)


def load_trust_keys(path: Path) -> dict[str, str]:
    """Read only the trust policy's keys (name to public key file) of a spec.

    For commands that need nothing else from the spec (``fim`` on a host):
    the rest of the spec is not validated, so they start faster and do not
    fail on a fleet setting they do not use. ``trust.keys`` itself is
    checked as :func:`load_spec` would.

    Raises:
        SpecError: The file is not YAML, or ``trust.keys`` is malformed.
        ConfigError: The file is missing, unreadable, too large or not UTF-8.
    """
    name = str(path)
    document = _parse_yaml(_decode(_read(path), name), name)
    trust = document.get("trust") if isinstance(document, dict) else None
    keys = trust.get("keys") if isinstance(trust, dict) else None
    problems: list[tuple[FieldPath, str]] = []
    if trust is not None and not isinstance(trust, dict):
        problems.append((("trust",), "trust must be a mapping"))
    elif keys is not None and not isinstance(keys, dict):
        problems.append((("trust", "keys"), "trust.keys must be a mapping"))
        keys = None
    for key, value in (keys or {}).items():
        if not isinstance(key, str) or not _KEY_NAME.fullmatch(key):
            problems.append((("trust", "keys", key), f"invalid key name {key!r}"))
        elif not isinstance(value, str) or not value:
            problems.append(
                (("trust", "keys", key), f"trust.keys.{key} must be a file path")
            )
    if problems:
        hint = "'zerodrift spec validate' checks the whole spec"
        raise SpecError(
            name, [(_position(document, p, name), m, hint) for p, m in problems]
        )
    return {str(k): str(v) for k, v in (keys or {}).items()}


def _read(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"no fleet spec at {path}",
            hint="run 'zerodrift init' to create one, or pass --project DIR",
            reference="spec-missing",
        ) from exc
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path}: {exc.strerror}", reference="spec-unreadable"
        ) from exc


def parse_spec(raw: bytes, name: str, *, path: Path | None = None) -> LoadedSpec:
    """Validate spec bytes; ``name`` is how error messages refer to them.

    Raises:
        SpecError: The content is not a valid fleet spec.
        ConfigError: The content is too large or not UTF-8.
    """
    text = _decode(raw, name)
    document = _parse_yaml(text, name)
    if document is None:
        raise SpecError(
            name,
            [
                (
                    Location(name, 1, 1),
                    "the spec is empty",
                    "start with 'version: 1' and 'name: <fleet>'; "
                    "'zerodrift init' writes a complete example",
                )
            ],
        )
    if not isinstance(document, dict):
        raise SpecError(
            name,
            [
                (
                    Location(name, 1, 1),
                    "the spec must be a mapping at the top level",
                    "start with 'version: 1' and 'name: <fleet>'",
                )
            ],
        )
    from pydantic import ValidationError

    from zerodrift.spec.models import Fleet
    from zerodrift.spec.references import check_references

    try:
        fleet = Fleet.model_validate(_plain(document, _Budget(name)))
    except ValidationError as exc:
        raise SpecError(name, _locate_validation(exc, document, name)) from None
    problems = check_references(fleet)
    if problems:
        raise SpecError(name, [_locate_problem(p, document, name) for p in problems])
    digest = canonical_digest(fleet.model_dump(mode="json", by_alias=True))
    return LoadedSpec(fleet, path or Path(name), digest, document)


class SpecLocator:
    """Finds the line and column of key paths in the spec, for reports.

    Args:
        source: The spec text, or an already parsed ``LoadedSpec.document``.
        name: How reports name the file.
    """

    def __init__(self, source: str | CommentedMap, name: str) -> None:
        self.name = name
        self._document: Any = source
        if isinstance(source, str):
            try:
                self._document = _parse_yaml(source, name)
            except SpecError:
                self._document = None

    def __call__(self, path: FieldPath) -> Location:
        """Locate ``path`` (e.g. ``("images", "web")``); unknown keys give line 1."""
        if self._document is None:
            return Location(self.name, field=".".join(str(p) for p in path) or None)
        return _position(self._document, path, self.name)


def _decode(raw: bytes, name: str) -> str:
    if len(raw) > MAX_SPEC_BYTES:
        raise ConfigError(
            f"{name} is larger than {MAX_SPEC_BYTES // (1024 * 1024)} MB",
            hint="a fleet spec this large is almost certainly not a spec; "
            "check the file name",
            location=Location(name),
            reference="spec-too-large",
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            f"{name} is not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
            hint="save the file as UTF-8",
            location=Location(name, line, column),
            reference="spec-not-utf8",
        ) from None


def _parse_yaml(text: str, name: str) -> Any:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        return yaml.load(text)
    except DuplicateKeyError as exc:
        mark = exc.problem_mark
        found = _DUPLICATE.search(exc.problem or "")
        key = found[1] if found else None
        field = _duplicate_field(text, exc.context_mark, key)
        raise SpecError(
            name,
            [
                (
                    Location(name, mark.line + 1, mark.column + 1, field)
                    if mark
                    else Location(name, field=field),
                    f"duplicate key {key!r}" if key else "duplicate key",
                    "each image, service, environment and key name must be "
                    "unique; merge the two entries or rename one",
                )
            ],
        ) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise SpecError(
            name,
            [
                (
                    Location(name, mark.line + 1, mark.column + 1)
                    if mark
                    else Location(name),
                    f"malformed YAML: {exc.problem or exc.context}",
                    "check indentation and quoting around this position",
                )
            ],
        ) from None
    except YAMLError as exc:
        raise SpecError(
            name, [(Location(name), f"malformed YAML: {exc}", None)]
        ) from None


def _duplicate_field(text: str, mapping_mark: Any, key: str | None) -> str | None:
    """Name the repeated key by its path, found by parsing leniently.

    ``mapping_mark`` is where the mapping holding the repeated key starts;
    the lenient parse keeps one of the two values, which is enough to walk
    to that mapping.
    """
    if mapping_mark is None or key is None:
        return None
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = True
    try:
        document = yaml.load(text)
    except YAMLError:
        return None
    target = (mapping_mark.line, mapping_mark.column)
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(document, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, CommentedMap):
            if (node.lc.line, node.lc.col) == target:
                return ".".join(str(p) for p in (*path, key))
            stack.extend((v, (*path, str(k))) for k, v in node.items())
        elif isinstance(node, CommentedSeq):
            stack.extend((v, (*path, i)) for i, v in enumerate(node))
    return key


class _Budget:
    """Counts values while aliases are expanded, to refuse alias bombs.

    A few hundred bytes of YAML anchors can name billions of values (the
    "billion laughs" attack); a real fleet spec has a few thousand.
    """

    limit = 200_000

    def __init__(self, name: str) -> None:
        self.name = name
        self.used = 0

    def spend(self) -> None:
        self.used += 1
        if self.used > self.limit:
            raise ConfigError(
                f"{self.name} expands to more than {self.limit} values",
                hint="YAML anchors and aliases (&name, *name) repeat data; "
                "a spec this large is almost certainly an attack or a mistake",
                location=Location(self.name),
                reference="spec-too-large",
            )


def _plain(node: Any, budget: _Budget) -> Any:
    """Convert ruamel's round-trip containers and scalars into plain Python."""
    budget.spend()
    if isinstance(node, dict):
        return {
            str(k) if not isinstance(k, (int, bool)) else k: _plain(v, budget)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_plain(v, budget) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def _locate_validation(
    exc: ValidationError, document: Any, name: str
) -> list[tuple[Location, str, str | None]]:
    located = []
    for error in exc.errors():
        path: FieldPath = tuple(error["loc"])
        message, hint = _explain(error)
        located.append((_position(document, path, name), message, hint))
    # In file order, the way a compiler lists errors.
    return sorted(located, key=lambda item: (item[0].line or 0, item[0].column or 0))


def _explain(error: Any) -> tuple[str, str | None]:
    kind = error["type"]
    loc = ".".join(str(p) for p in error["loc"]) or "<top>"
    if kind == "extra_forbidden":
        return (
            f"unknown key {loc!r}",
            "check the spelling; 'zerodrift spec schema' lists every allowed key",
        )
    if kind == "missing":
        return f"missing required key {loc!r}", "see docs/spec.md for what it holds"
    if kind == "literal_error" and error["loc"] == ("version",):
        return "unsupported spec version", "this zerodrift reads 'version: 1'"
    return (
        f"{loc}: {error['msg']}",
        "'zerodrift spec schema' shows the expected form of every key",
    )


def _locate_problem(
    problem: Problem, document: Any, name: str
) -> tuple[Location, str, str | None]:
    return _position(document, problem.path, name), problem.message, problem.hint


def _position(document: Any, path: FieldPath, name: str) -> Location:
    """Find the line and column of the deepest key of ``path`` in ``document``."""
    field = ".".join(str(p) for p in path) or None
    node = document
    line, column = 0, 0
    for part in path:
        if isinstance(node, CommentedMap) and part in node:
            line, column = node.lc.key(part)
            node = node[part]
        elif (
            isinstance(node, CommentedSeq)
            and isinstance(part, int)
            and 0 <= part < len(node)
        ):
            line, column = node.lc.item(part)
            node = node[part]
        else:
            break
    return Location(name, line + 1, column + 1, field)
