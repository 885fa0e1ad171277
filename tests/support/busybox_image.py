"""A tiny busybox image in an OCI layout, built with real Debian tools.

``mmdebstrap --variant=extract --include=busybox-static`` makes the root
filesystem (with the example fleet's web roots), ``umoci`` turns it into an
OCI image layout with one tag per role. Used by the runtime tests and the
runtime benchmark; zerodrift's own image build is not involved.

:func:`install_store` stores each image's golden manifest beside it, derived
from the layer tar with the same functions the image build and the verifier
use. It is not signed (the runtime tests run without image verification):
a stand-in for what ``zerodrift build`` attaches and signs.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from zerodrift.detect.manifest import (
    ARTIFACT_TYPE,
    MEDIA_TYPE,
    GoldenManifest,
    entries_from_tar,
    merge_layers,
)
from zerodrift.oci.layout import Layout

__all__ = ["ROLES", "build_busybox_layout", "install_store"]

# tag -> command; "broken" listens where no health probe looks, "crash" dies.
ROLES: dict[str, list[str]] = {
    "web": ["httpd", "-f", "-p", "8080", "-h", "/srv/www"],
    "api": ["httpd", "-f", "-p", "8081", "-h", "/srv/api"],
    "api-v2": ["httpd", "-f", "-h", "/srv/api", "-p", "8081"],
    "db": ["httpd", "-f", "-p", "5432", "-h", "/srv/db"],
    "broken": ["httpd", "-f", "-p", "9999", "-h", "/srv/www"],
    "crash": ["sh", "-c", "sleep 0.3; echo 'db: cannot open /var/lib/db' >&2; exit 3"],
}

_HOOK = (
    'chroot "$1" /bin/busybox --install -s /bin; '
    'mkdir -p "$1/srv/www" "$1/srv/api/v1" "$1/srv/db" "$1/var/lib/db"; '
    'echo "<h1>web</h1>" > "$1/srv/www/index.html"; '
    'echo \'{"status":"ok"}\' > "$1/srv/api/v1/status.json"; '
    'echo db > "$1/srv/db/index.html"; '
    'mkdir -p "$1/tmp"; chmod 1777 "$1/tmp"; '
    'echo node > "$1/etc/hostname"; : > "$1/etc/resolv.conf"'
)


def build_busybox_layout(folder: Path) -> Path:
    """Build the layout in ``folder/layout`` (about 15 s); return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    rootfs = folder / "rootfs.tar"
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    subprocess.run(
        [
            "mmdebstrap",
            "--quiet",
            "--variant=extract",
            "--include=busybox-static",
            "--skip=output/dev",
            f"--extract-hook={_HOOK}",
            "bookworm",
            str(rootfs),
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    layout = folder / "layout"
    subprocess.run(["umoci", "init", "--layout", str(layout)], check=True)
    subprocess.run(["umoci", "new", "--image", f"{layout}:base"], check=True)
    subprocess.run(
        ["umoci", "raw", "add-layer", "--image", f"{layout}:base", str(rootfs)],
        check=True,
    )
    for tag, command in ROLES.items():
        args = [
            "umoci",
            "config",
            "--image",
            f"{layout}:base",
            "--tag",
            tag,
            "--config.user",
            "65534:65534",
            "--config.entrypoint",
            "/bin/busybox",
            "--config.workingdir",
            "/",
        ]
        for part in command:
            args.append(f"--config.cmd={part}")
        subprocess.run(args, check=True)
    return layout


def install_store(layout: Path, store: Path, tags: dict[str, str]) -> dict[str, str]:
    """Write an OCI layout at ``store`` naming images after ``tags``' keys.

    ``tags`` maps the store's image name to a tag of ``layout``. Blobs are
    hard-linked; a golden manifest of each image is stored as its referrer.
    Returns image name -> manifest digest.
    """
    index = json.loads((layout / "index.json").read_text())
    by_tag = {
        m["annotations"]["org.opencontainers.image.ref.name"]: m
        for m in index["manifests"]
    }
    blobs = store / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for blob in (layout / "blobs" / "sha256").iterdir():
        target = blobs / blob.name
        if not target.exists():
            os.link(blob, target)
    manifests = []
    for name, tag in tags.items():
        entry = dict(by_tag[tag])
        entry["annotations"] = {"org.opencontainers.image.ref.name": name}
        manifests.append(entry)
    (store / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (store / "index.json").write_text(
        json.dumps({"schemaVersion": 2, "manifests": manifests})
    )
    digests = {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
        for m in manifests
    }
    oci = Layout.open(store)
    for name, digest in digests.items():
        golden = _golden(oci, digest, name)
        oci.add_artifact(
            oci.resolve(digest), ARTIFACT_TYPE, [(golden.to_json(), MEDIA_TYPE)]
        )
    return digests


_GOLDEN: dict[tuple[str, str], GoldenManifest] = {}


def _golden(layout: Layout, digest: str, name: str) -> GoldenManifest:
    """The golden manifest of an image, from its (uncompressed or gzip) layers."""
    if (digest, name) in _GOLDEN:
        return _GOLDEN[digest, name]
    layers = []
    for item in layout.read_json(digest)["layers"]:
        with layout.open_blob(item["digest"]) as reader:
            stream: Any = reader  # tarfile only needs its read()
            layers.append(entries_from_tar(stream))
    golden = _GOLDEN[digest, name] = GoldenManifest.build(name, merge_layers(layers))
    return golden
