"""The registry of commands: each module has ``register(subparsers, common)``.

Adding a command is adding a module here and one line to ``COMMANDS``.
"""

from __future__ import annotations

from types import ModuleType

from zerodrift._cli.commands import (
    apply,
    audit,
    build,
    check,
    evidence,
    fim,
    findings,
    gate,
    incidents,
    init,
    inventory,
    keygen,
    plan,
    push,
    recover,
    report,
    respond,
    seal,
    sign,
    spec,
    verify,
    watch,
)

__all__ = ["COMMANDS"]

COMMANDS: tuple[ModuleType, ...] = (
    init,
    spec,
    keygen,
    inventory,
    build,
    verify,
    sign,
    push,
    plan,
    apply,
    recover,
    check,
    watch,
    respond,
    incidents,
    findings,
    evidence,
    seal,
    audit,
    fim,
    gate,
    report,
)
