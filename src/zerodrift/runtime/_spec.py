"""The libpod container-create request of a hardened node (pure, no IO)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zerodrift.runtime.backend import NodeSpec

__all__ = ["LABEL_SECRET_ENV", "spec_generator"]

LABEL_SECRET_ENV = "io.zerodrift.secret-env"  # noqa: S105 - a label name


def spec_generator(
    spec: NodeSpec,
    secrets: list[dict[str, Any]],
    secret_env: dict[str, str],
) -> dict[str, Any]:
    """The libpod create request for a hardened node (see ADR 0021).

    Args:
        spec: The node.
        secrets: Secret file mounts (podman secret name, target, owner).
        secret_env: Environment variable -> podman secret name.
    """
    config = spec.config
    resources = config["resources"]
    limits: dict[str, Any] = {}
    if resources.get("memory"):
        limits["memory"] = {"limit": int(resources["memory"])}
    if resources.get("cpus"):
        limits["cpu"] = {
            "quota": int(float(resources["cpus"]) * 100_000),
            "period": 100_000,
        }
    if resources.get("pids"):
        limits["pids"] = {"limit": int(resources["pids"])}
    networks = config["networks"]
    labels = dict(spec.labels)
    if secret_env:
        labels[LABEL_SECRET_ENV] = ",".join(sorted(secret_env))
    body: dict[str, Any] = {
        "name": spec.name,
        "image": spec.image_ref,
        "labels": labels,
        "env": dict(config["env"]),
        "user": config["user"],
        "read_only_filesystem": True,
        "read_write_tmpfs": False,
        "privileged": False,
        "no_new_privileges": True,
        "cap_drop": ["ALL"],
        "cap_add": list(config["capabilities"]),
        "mounts": [
            {
                "destination": path,
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["rw", "nosuid", "nodev", "mode=1777", "size=64m"],
            }
            for path in config["writable"]
        ]
        + [
            # File secrets need a mount point on the read-only root: a
            # tiny root-owned tmpfs the node's user cannot write to.
            {
                "destination": folder,
                "type": "tmpfs",
                "source": "tmpfs",
                "options": [
                    *("rw", "nosuid", "nodev", "noexec"),
                    *("mode=0755", "size=1m"),
                ],
            }
            for folder in _secret_folders(secrets, config["writable"])
        ],
        "volumes": [
            {
                "Name": volume["volume"],
                "Dest": volume["path"],
                "Options": ["ro"] if volume["read_only"] else [],
            }
            for volume in config["volumes"]
        ],
        "resource_limits": limits,
        "secrets": secrets,
        "secret_env": secret_env,
        # A minimal init as PID 1 forwards SIGTERM, so nodes stop at once
        # instead of waiting for the kill after the stop timeout.
        "init": True,
        "stop_timeout": 5,
        "hostname": config["service"],
    }
    if networks:
        body["netns"] = {"nsmode": "bridge"}
        body["Networks"] = {
            net: {"aliases": list(aliases)} for net, aliases in networks.items()
        }
    else:
        body["netns"] = {"nsmode": "none"}
    return body


def _secret_folders(secrets: list[dict[str, Any]], writable: list[str]) -> list[str]:
    folders = {str(Path(s["Target"]).parent) for s in secrets}
    return sorted(
        f
        for f in folders
        if not any(f == w or f.startswith(w.rstrip("/") + "/") for w in writable)
    )
