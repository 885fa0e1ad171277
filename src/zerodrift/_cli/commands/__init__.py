"""The registry of commands: each module has ``register(subparsers, common)``.

Adding a command is adding a module here and one line to ``COMMANDS``.
"""

from __future__ import annotations

from types import ModuleType

from zerodrift._cli.commands import audit, fim, init, inventory, keygen, spec

__all__ = ["COMMANDS"]

COMMANDS: tuple[ModuleType, ...] = (init, spec, keygen, inventory, audit, fim)
