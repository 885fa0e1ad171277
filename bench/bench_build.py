"""Benchmark: layer and manifest creation, zerodrift against umoci.

Builds the example fleet once (mmdebstrap, cached), which gives the three
images' final root folders. Then, in the same run and on the same root
folders, it times:

- zerodrift: deterministic layer (tar, SHA-256 of every file for the golden
  manifest, diff ID, gzip, blob digest, fsync) plus config and manifest;
- umoci: ``umoci repack`` (the layer) plus ``umoci config`` (entrypoint and
  user), starting from an empty image unpacked into a bundle whose
  ``rootfs`` holds the same folder: the reproducible path with Debian's tools.

The example images are tiny (2 MB), so the run also times one larger, mixed
tree (default ``/usr/lib/python3.11``, about 55 MB) the same way, and measures
the machine's single-core gzip (zlib -6, zlib-ng -4) and SHA-256
speeds on that tree's own tar, so throughput can be read against the limits.

    .venv/bin/python -m bench.bench_build [--repeat 5] [--tree /usr/lib/python3.11]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from zlib_ng import zlib_ng

from zerodrift.oci.descriptor import MEDIA_TYPE_CONFIG, encode, image_manifest
from zerodrift.oci.layout import Layout
from zerodrift.protect.layer import LayerOptions, write_layer

EPOCH = 1_700_000_000
ENV = {
    **os.environ,
    "ZERODRIFT_KEY_PASSPHRASE": "bench-passphrase",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


def _run(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(
        args, cwd=cwd, env=ENV, check=True, capture_output=True, text=True
    ).stdout


def _example_rootfs(work: Path) -> dict[str, Path]:
    """Build the example and unpack each image's final root folder."""
    project = work / "shop"
    _run(sys.executable, "-m", "zerodrift", "init", str(project))
    _run("git", "init", "-q", cwd=project)
    _run("git", "add", "-A", cwd=project)
    _run("git", "commit", "-qm", "bench", cwd=project)
    _run(sys.executable, "-m", "zerodrift", "build", "-q", cwd=project)
    store = project / ".zerodrift" / "store"
    roots = {}
    for name in ("web", "api", "db"):
        bundle = work / f"bundle-{name}"
        _run("umoci", "unpack", "--image", f"{store}:{name}", str(bundle))
        roots[name] = bundle / "rootfs"
    return roots


def _zerodrift(rootfs: Path, out: Path) -> float:
    """Seconds to write rootfs as a layer plus config and manifest."""
    layout = Layout.create(out)
    start = time.perf_counter()
    layer = write_layer(rootfs, layout, LayerOptions(source_date_epoch=EPOCH))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"User": "65534:65534", "Entrypoint": ["/bin/busybox", "httpd"]},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
    }
    config_desc = layout.write_blob(encode(config), MEDIA_TYPE_CONFIG)
    layout.add_manifest(image_manifest(config_desc, [layer.descriptor]), tag="bench")
    return time.perf_counter() - start


def _umoci(rootfs: Path, out: Path) -> float:
    """Seconds for ``umoci repack`` plus ``umoci config`` of the same folder."""
    layout, bundle = out / "layout", out / "bundle"
    _run("umoci", "init", "--layout", str(layout))
    _run("umoci", "new", "--image", f"{layout}:bench")
    _run("umoci", "unpack", "--image", f"{layout}:bench", str(bundle))
    shutil.rmtree(bundle / "rootfs")
    _run("cp", "-a", str(rootfs), str(bundle / "rootfs"))
    start = time.perf_counter()
    _run("umoci", "repack", "--image", f"{layout}:bench", str(bundle))
    _run(
        "umoci", "config", "--image", f"{layout}:bench",
        "--config.user", "65534:65534", "--config.entrypoint", "/bin/busybox",
    )  # fmt: skip
    return time.perf_counter() - start


def _interleaved(
    repeat: int, work: Path, rootfs: Path
) -> tuple[tuple[float, int], tuple[float, int]]:
    """Median seconds and layer size of zerodrift and umoci, run alternately.

    Alternating the two tools spreads the load of a shared machine evenly.
    """
    results: dict[str, tuple[list[float], int]] = {}
    for index in range(repeat):
        for step in (_zerodrift, _umoci):
            out = work / f"out-{step.__name__}-{index}"
            seconds = step(rootfs, out)
            blobs = [p for p in out.rglob("blobs/sha256/*") if p.is_file()]
            times, _ = results.setdefault(step.__name__, ([], 0))
            times.append(seconds)
            results[step.__name__] = (times, max(p.stat().st_size for p in blobs))
            shutil.rmtree(out)
    ours, theirs = results["_zerodrift"], results["_umoci"]
    return (
        (statistics.median(ours[0]), ours[1]),
        (statistics.median(theirs[0]), theirs[1]),
    )


def _tree_bytes(rootfs: Path) -> int:
    return sum(
        p.lstat().st_size
        for p in rootfs.rglob("*")
        if p.is_file() and not p.is_symlink()
    )


def _limits(rootfs: Path, work: Path) -> tuple[float, float, float, int]:
    """Single-core gzip (zlib -6, zlib-ng -4) and SHA-256 MB/s on the tree's tar."""
    tar = work / "limits.tar"
    _run("tar", "-C", str(rootfs), "-cf", str(tar), ".")
    data = tar.read_bytes()
    tar.unlink()
    speeds = []
    for module, level in ((zlib, 6), (zlib_ng, 4)):
        start = time.perf_counter()
        compressor = module.compressobj(level, module.DEFLATED, 31)
        compressor.compress(data)
        compressor.flush()
        speeds.append(len(data) / (time.perf_counter() - start) / 1e6)
    start = time.perf_counter()
    hashlib.sha256(data).digest()
    sha = len(data) / (time.perf_counter() - start) / 1e6
    return speeds[0], speeds[1], sha, len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tree", type=Path, default=Path("/usr/lib/python3.11"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        work = Path(tmp)
        roots = _example_rootfs(work)
        large = work / "large-rootfs"
        _run("cp", "-a", str(args.tree), str(large))
        roots["large"] = large
        print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cpus, "
              f"Python {platform.python_version()}, zlib {zlib.ZLIB_RUNTIME_VERSION}, "
              f"{_run('umoci', '--version').strip()}")  # fmt: skip
        print(f"{'tree':<8} {'MB':>7} {'zerodrift s':>12} {'umoci s':>9} "
              f"{'zd MB/s':>8} {'ratio':>6} {'zd layer':>9} "
              f"{'umoci lyr':>9}")  # fmt: skip
        rows = {}
        for name, rootfs in roots.items():
            size = _tree_bytes(rootfs)
            (ours, our_layer), (theirs, their_layer) = _interleaved(
                args.repeat, work, rootfs
            )
            rows[name] = (size, ours, theirs)
            print(f"{name:<8} {size / 1e6:>7.1f} {ours:>12.3f} {theirs:>9.3f} "
                  f"{size / ours / 1e6:>8.1f} {ours / theirs:>6.2f} "
                  f"{our_layer / 1e6:>9.2f} {their_layer / 1e6:>9.2f}")  # fmt: skip
        zlib_mbs, ng_mbs, sha_mbs, tar_size = _limits(large, work)
        size, ours, _ = rows["large"]
        speed = size / ours / 1e6
        print(f"limits on the large tree's tar ({tar_size / 1e6:.1f} MB), one core: "
              f"zlib gzip -6 {zlib_mbs:.1f} MB/s, zlib-ng gzip -4 {ng_mbs:.1f} MB/s, "
              f"SHA-256 {sha_mbs:.0f} MB/s; zerodrift {speed:.1f} MB/s = "
              f"{speed / zlib_mbs:.2f} x zlib, {speed / ng_mbs:.2f} x zlib-ng "
              f"single-core")  # fmt: skip
        print(json.dumps({k: {"bytes": v[0], "zerodrift_s": v[1], "umoci_s": v[2]}
                          for k, v in rows.items()}))  # fmt: skip


if __name__ == "__main__":
    main()
