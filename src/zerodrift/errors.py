"""The error hierarchy of zerodrift.

Every failure that a user can cause or that the outside world can cause is a
:class:`ZerodriftError`. Each carries a stable kebab-case ``reference`` that is
documented, a one-line ``message``, an optional ``hint`` that says what to do,
and an optional ``location`` (a file, line and column, or a field path).

Families tell the command line which exit code to use:

- :class:`ConfigError`: the user's input is wrong (spec, key, configuration).
- :class:`VerificationError`: a signature, digest or trust policy check failed.
- :class:`IntegrityError`: stored data (audit trail, baseline, image) does not
  match what was recorded; this signals tampering.
- :class:`OperationalError`: the environment failed us (IO, database, network,
  a missing tool).

Programmer mistakes stay ``TypeError``/``ValueError``/``RuntimeError``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ConfigError",
    "IntegrityError",
    "Location",
    "OperationalError",
    "VerificationError",
    "ZerodriftError",
]


@dataclass(frozen=True)
class Location:
    """Where in the user's input a problem is.

    Attributes:
        path: The file, as the user would name it.
        line: One-based line number, when known.
        column: One-based column number, when known.
        field: A dotted path of the offending key (``services.web.image``).
    """

    path: str | None = None
    line: int | None = None
    column: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        parts = [self.path or "<input>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        where = ":".join(parts)
        return f"{where} ({self.field})" if self.field else where


class ZerodriftError(Exception):
    """The root of every error zerodrift raises on purpose.

    Args:
        message: What went wrong, in one sentence, without secrets.
        hint: What the user can do about it.
        location: Where in the input the problem is.
        reference: A stable identifier; defaults to the class's own.
    """

    reference = "zerodrift-error"

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        location: Location | None = None,
        reference: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.location = location
        if reference is not None:
            self.reference = reference

    def diagnostics(self) -> str:
        """Render the error as a short block for a person at a terminal."""
        head = f"error[{self.reference}]: {self.message}"
        lines = [head]
        if self.location is not None:
            lines.append(f"  --> {self.location}")
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        """Render the error for ``--format json`` output."""
        loc = self.location
        return {
            "reference": self.reference,
            "message": self.message,
            "hint": self.hint,
            "location": None
            if loc is None
            else {
                "path": loc.path,
                "line": loc.line,
                "column": loc.column,
                "field": loc.field,
            },
        }


class ConfigError(ZerodriftError):
    """The user's input (spec, configuration, key, arguments) is wrong."""

    reference = "config-error"


class VerificationError(ZerodriftError):
    """A signature, digest or trust-policy check failed."""

    reference = "verification-failed"


class IntegrityError(ZerodriftError):
    """Recorded data no longer matches what was recorded: a sign of tampering."""

    reference = "integrity-violation"


class OperationalError(ZerodriftError):
    """The environment failed: IO, database, network or a missing tool."""

    reference = "operational-error"
