"""A zerodrift project: a folder with ``fleet.yaml`` and its ``.zerodrift`` state.

The project knows where everything lives and which engines to use. Engines
are chosen by URL, from (first match wins) the environment, the optional
``zerodrift.toml`` next to the spec, or the embedded defaults:

- state database: ``ZERODRIFT_DATABASE_URL``, ``[state] url``, or
  ``sqlite:///<project>/.zerodrift/state.db``;
- signing key name: ``ZERODRIFT_KEY``, ``[keys] name``, or ``project``.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zerodrift.errors import ConfigError, Location

if TYPE_CHECKING:
    from zerodrift.spec import LoadedSpec

__all__ = ["CONFIG_FILE", "SPEC_FILE", "STATE_DIR", "WITNESS_FILE", "Project"]

SPEC_FILE = "fleet.yaml"
CONFIG_FILE = "zerodrift.toml"
STATE_DIR = ".zerodrift"
WITNESS_FILE = "audit-witness.json"
_KEY_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")
_CONFIG_KEYS = {"state": {"url"}, "keys": {"name"}}
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)")


def _check_config(data: dict[str, Any], path: Path) -> None:
    """Refuse unknown sections, unknown keys and values that are not text.

    Raises:
        ConfigError: The first problem found, naming the setting.
    """
    known = ", ".join(
        f"[{section}] {', '.join(sorted(keys))}"
        for section, keys in _CONFIG_KEYS.items()
    )
    for section, values in data.items():
        allowed = _CONFIG_KEYS.get(section)
        if allowed is None or not isinstance(values, dict):
            raise ConfigError(
                f"unknown section [{section}] in {CONFIG_FILE}",
                hint=f"known settings: {known}",
                location=Location(str(path), field=section),
                reference="config-invalid",
            )
        for key, value in values.items():
            if key not in allowed:
                raise ConfigError(
                    f"unknown setting {key!r} in [{section}] of {CONFIG_FILE}",
                    hint=f"known settings: {known}",
                    location=Location(str(path), field=f"{section}.{key}"),
                    reference="config-invalid",
                )
            if not isinstance(value, str) or not value:
                raise ConfigError(
                    f"setting {key!r} in [{section}] must be a non-empty string",
                    location=Location(str(path), field=f"{section}.{key}"),
                    reference="config-invalid",
                )


@dataclass
class Project:
    """Paths and settings of one project. Reads nothing until asked."""

    root: Path
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    @classmethod
    def discover(cls, start: Path | None = None) -> Project:
        """Find the project holding ``start`` (default: the current folder).

        Looks in ``start`` and its parents for ``fleet.yaml``.

        Raises:
            ConfigError: No parent folder holds a fleet spec.
        """
        here = (start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / SPEC_FILE).is_file():
                return cls(folder)
        raise ConfigError(
            f"no {SPEC_FILE} in {here} or any parent folder",
            hint="run 'zerodrift init' to create a project, or pass --project DIR",
            reference="project-missing",
        )

    @property
    def spec_path(self) -> Path:
        """The fleet spec file."""
        return self.root / SPEC_FILE

    @property
    def state_dir(self) -> Path:
        """The local state folder (git-ignored)."""
        return self.root / STATE_DIR

    @property
    def store_dir(self) -> Path:
        """The OCI image layout that builds write to and deployments read."""
        return self.state_dir / "store"

    @property
    def witness_path(self) -> Path:
        """The file mirroring the newest signed audit checkpoint."""
        return self.state_dir / WITNESS_FILE

    @cached_property
    def config(self) -> dict[str, Any]:
        """The optional ``zerodrift.toml`` settings.

        Raises:
            ConfigError: The file is not valid TOML or has unknown settings.
        """
        path = self.root / CONFIG_FILE
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(
                f"cannot read {path}: {exc.strerror}", reference="config-unreadable"
            ) from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            where = _TOML_POSITION.search(str(exc))
            line, column = (int(where[1]), int(where[2])) if where else (None, None)
            raise ConfigError(
                f"{CONFIG_FILE} is not valid TOML: {_TOML_POSITION.sub('', str(exc))}",
                hint="see the configuration table in the README",
                location=Location(str(path), line, column),
                reference="config-invalid",
            ) from exc
        _check_config(data, path)
        return data

    @property
    def database_url(self) -> str:
        """URL of the state database."""
        url = self.environ.get("ZERODRIFT_DATABASE_URL") or self.config.get(
            "state", {}
        ).get("url")
        if not url:
            return f"sqlite:///{self.state_dir / 'state.db'}"
        # A relative SQLite path means relative to the project, not to
        # wherever the command happens to run.
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/"):
            relative = url[len(prefix) :]
            if relative and not relative.startswith(":memory:"):
                return prefix + str(self.root / relative)
        return str(url)

    @property
    def key_name(self) -> str:
        """Name of the key this project signs with.

        Raises:
            ConfigError: The configured name could escape the keys folder.
        """
        name = str(
            self.environ.get("ZERODRIFT_KEY")
            or self.config.get("keys", {}).get("name")
            or "project"
        )
        if not _KEY_NAME.fullmatch(name):
            raise ConfigError(
                f"{name!r} is not a valid key name",
                hint="use lower-case letters, digits and '-', starting with a letter",
                reference="key-name-invalid",
            )
        return name

    @property
    def private_key_path(self) -> Path:
        """The encrypted private signing key (never committed)."""
        return self.state_dir / "keys" / f"{self.key_name}.key"

    def public_key_path(self, name: str | None = None) -> Path:
        """The committed public key of ``name`` (default: the signing key)."""
        return self.root / "keys" / f"{name or self.key_name}.pub"

    def load_spec(self) -> LoadedSpec:
        """Load and validate the fleet spec.

        Raises:
            ConfigError: The spec is missing or invalid.
        """
        from zerodrift.spec import load_spec

        return load_spec(self.spec_path)

    def resolve(self, relative: str) -> Path:
        """Resolve a path written in the spec relative to the project root."""
        path = Path(relative)
        return path if path.is_absolute() else self.root / path
