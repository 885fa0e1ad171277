"""Benchmark: push and pull through a real registry, against skopeo.

Builds a synthetic signed image (one gzip layer of random, incompressible
files, default 64 MiB) in an OCI layout, starts Debian's docker-registry on
loopback, then in the same run:

- ``zerodrift`` push (image + 4 referrers) and pull into an empty layout;
- ``skopeo copy oci:... docker://...`` and back (the image only: skopeo does
  not carry referrers);
- ``zerodrift`` verification of the pulled copy (five steps, every layer
  re-read).

Prints seconds, MB/s and the zerodrift/skopeo ratio (below 1 is faster).

    .venv/bin/python -m bench.bench_registry [--mib 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import platform
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from tests.integration.attest import conftest as fixtures
from tests.support.registry import Registry, running_registry

from zerodrift.oci.layout import Layout
from zerodrift.oci.registry import (
    RegistryClient,
    parse_registry_url,
    pull_image,
    push_image,
)
from zerodrift.protect.verify import git_commit_exists, verify_image


def _random_layer(mib: int) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for index in range(mib):
            data = os.urandom(1 << 20)
            info = tarfile.TarInfo(f"srv/data/{index:04d}.bin")
            info.size = len(data)
            info.mode = 0o444
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=1, mtime=0)


def _skopeo(*args: str) -> None:
    subprocess.run(["skopeo", "copy", "-q", *args], check=True)


def _timed(step: Callable[[], object]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def _round(
    registry: Registry,
    signed: fixtures.SignedImage,
    key: fixtures.Key,
    work: Path,
    attempt: int,
) -> list[tuple[str, float]]:
    """One push, pull and verify by each tool against one fresh registry."""
    ref = parse_registry_url(registry.url("zd/web"))
    pulled = work / f"zd-pull{attempt}"
    return [
        ("sk push", _timed(partial(
            _skopeo, "--dest-tls-verify=false", f"oci:{signed.layout.path}:web",
            f"docker://{registry.address}/sk/web:web",
        ))),
        ("zd push", _timed(partial(
            push_image, signed.layout, "web", RegistryClient(ref), tag="web"
        ))),
        ("sk pull", _timed(partial(
            _skopeo, "--src-tls-verify=false",
            f"docker://{registry.address}/sk/web:web",
            f"oci:{work / f'sk-pull{attempt}'}:web",
        ))),
        ("zd pull", _timed(partial(
            pull_image, RegistryClient(ref), signed.image.digest,
            Layout.create(pulled), tag="web",
        ))),
        # Entries run in order, so the pulled layout exists by now.
        ("verify", _timed(partial(
            verify_image, Layout.open(pulled), "web", allowed_keys=[key.public],
            commit_exists=git_commit_exists(signed.repo),
        ))),
    ]  # fmt: skip


def main() -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="zd-bench-registry-"))
    layer = _random_layer(args.mib)
    key = fixtures.make_key(work / "keys", "project")
    signed = fixtures.build_signed_image(work / "src", key, layer_gzip=layer)
    size_mb = len(layer) / 1e6

    timings: dict[str, list[float]] = {}
    # A fresh registry per round: neither tool can mount a blob it pushed before.
    for attempt in range(args.repeat):
        with running_registry() as registry:
            for name, seconds in _round(registry, signed, key, work, attempt):
                timings.setdefault(name, []).append(seconds)
    median = {name: statistics.median(values) for name, values in timings.items()}
    results = {
        "push": (median["zd push"], median["sk push"]),
        "pull": (median["zd pull"], median["sk pull"]),
    }
    verify = median["verify"]

    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores")
    print(f"image: one gzip layer of {size_mb:.1f} MB, 4 referrers; median of "
          f"{args.repeat}")  # fmt: skip
    print(
        f"{'operation':<10}{'zerodrift s':>13}{'skopeo s':>10}{'MB/s':>9}{'ratio':>8}"
    )
    for name, (ours, theirs) in results.items():
        print(
            f"{name:<10}{ours:>13.3f}{theirs:>10.3f}{size_mb / ours:>9.0f}"
            f"{ours / theirs:>8.2f}"
        )
    print(f"{'verify':<10}{verify:>13.3f}{'-':>10}{size_mb / verify:>9.0f}{'-':>8}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
