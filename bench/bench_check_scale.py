"""Scale benchmark of ``zerodrift check``: nodes, distinct images, changed files.

Deploys fleets of tiny busybox nodes on a private podman service and times
``zerodrift check`` (node checks plus the full verification of image content
on disk) over:

- 20 nodes of 1 image, 100 nodes of 1 image, 100 nodes of 5 images (each
  image has its own layer: the 2 MB busybox root plus ``--payload`` MB of
  data files, so five images mean five times the bytes to hash);
- 100 nodes of 5 images with N files written into one node's writable path.

Next to it, in the same run, the naive peers that cost nodes x files:
``podman diff`` run for every node, one after the other (what a shell loop
around the podman CLI does; it lists changed paths but verifies no content),
and an AIDE-style full rehash of every node's root filesystem read through
``/proc/PID/root``.

    .venv/bin/python bench/bench_check_scale.py [--repeat 5] [--payload 32]
        [--files 2000,10000]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.busybox_image import ROLES, build_busybox_layout, install_store
from tests.support.podman import running_podman

from bench.bench_runtime import prepare_example_environment
from zerodrift._cli.main import main
from zerodrift.detect.check import list_writable
from zerodrift.errors import OperationalError
from zerodrift.runtime.podman import PodmanBackend

IMAGES = 5


def _variants(folder: Path, layout: Path, count: int, payload_mb: int) -> None:
    """Tag ``v0``..``v{count-1}``: the busybox root, each with its own layer.

    Each layer also holds ``payload_mb`` MB of data in 256 KiB files under
    /srv/data (distinct bytes per image).
    """
    rootfs = folder / "rootfs.tar"
    chunk = 256 * 1024
    for index in range(count):
        variant = folder / f"rootfs-{index}.tar"
        shutil.copyfile(rootfs, variant)
        with tarfile.open(variant, "a") as archive:
            folder_info = tarfile.TarInfo("./srv/data")
            folder_info.type, folder_info.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(folder_info)
            files = [("./etc/zd-variant", f"variant {index}\n".encode())]
            for number in range(payload_mb * 4):
                seed = f"{index}-{number}".encode()
                data = hashlib.shake_256(seed).digest(chunk)
                files.append((f"./srv/data/{number:04d}.bin", data))
            for name, data in files:
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
                archive.addfile(info, io.BytesIO(data))
        image = f"{layout}:v{index}"
        subprocess.run(["umoci", "new", "--image", image], check=True)
        subprocess.run(
            ["umoci", "raw", "add-layer", "--image", image, str(variant)], check=True
        )
        config = [
            "umoci", "config", "--image", image, "--config.user", "65534:65534",
            "--config.entrypoint", "/bin/busybox", "--config.workingdir", "/",
        ]  # fmt: skip
        config += [f"--config.cmd={part}" for part in ROLES["web"]]
        subprocess.run(config, check=True)


def _spec(name: str, services: list[tuple[str, str, int]]) -> str:
    """A fleet spec with one image recipe per image and the given services."""
    images = sorted({image for _svc, image, _n in services})
    lines = ["version: 1", f"name: {name}", "images:"]
    for image in images:
        lines += [
            f"  {image}:",
            "    base: debian:bookworm",
            "    variant: extract",
            "    packages: [busybox-static]",
            "    entrypoint: [/bin/busybox, httpd, -f, -p, '8080', -h, /srv/www]",
            "    writable: [/tmp]",
            "    hardening: {allow_shell: true, allow_package_manager: true}",
        ]
    lines.append("services:")
    for service, image, replicas in services:
        lines += [
            f"  {service}:",
            f"    image: {image}",
            f"    replicas: {replicas}",
            "    writable: [/tmp]",
            "    resources: {memory: 16Mi, cpus: 0.1}",
        ]
    lines += [
        "environments:",
        "  dev: {response: alert}",
        "trust:",
        "  keys: {project: keys/project.pub}",
        "  environments: {dev: [project]}",
    ]
    return "\n".join(lines) + "\n"


def _zd(project: Path, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["-q", "-C", str(project), *args])
    return code, out.getvalue()


def _check(project: Path, repeat: int, *extra: str) -> tuple[float, dict[str, Any]]:
    """Best wall time of ``zerodrift check`` and its last JSON result.

    The best of several runs, because the machine is shared: the slower
    runs measure the other processes.
    """
    times = []
    result: dict[str, Any] = {}
    for _ in range(repeat):
        began = time.perf_counter()
        code, out = _zd(project, "check", "--env", "dev", "--format", "json", *extra)
        times.append(time.perf_counter() - began)
        if code not in (0, 1):
            raise SystemExit(f"zerodrift check failed with {code}")
        (result,) = json.loads(out)["environments"]
    return min(times), result


def _nodes(backend: PodmanBackend, fleet: str) -> list[str]:
    return sorted(
        n.name
        for n in backend.list_nodes()
        if n.labels.get("io.zerodrift.fleet") == fleet and n.state == "running"
    )


def _podman_diff_loop(env: dict[str, str], nodes: list[str]) -> float:
    began = time.perf_counter()
    for node in nodes:
        subprocess.run(
            ["podman", "diff", node], env=env, check=True, capture_output=True
        )
    return time.perf_counter() - began


def _rehash_every_node(backend: PodmanBackend, nodes: list[str]) -> tuple[float, int]:
    """Hash every regular file of every node's root filesystem (nodes x files)."""
    began = time.perf_counter()
    files = 0
    for node in nodes:
        pid = int(backend.inspect(node)["State"]["Pid"])
        root = f"/proc/{pid}/root"
        for folder, dirs, names in os.walk(root):
            if folder == root:
                dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev")]
            for name in names:
                path = os.path.join(folder, name)
                with contextlib.suppress(OSError):
                    if os.path.isfile(path) and not os.path.islink(path):
                        with open(path, "rb") as handle:
                            hashlib.file_digest(handle, "sha256")
                        files += 1
    return time.perf_counter() - began, files


def _write_files(backend: PodmanBackend, node: str, count: int) -> None:
    # Empty files: file data on the tmpfs would count against the node's
    # memory limit.
    script = f"i=0; while [ $i -lt {count} ]; do : > /tmp/f$i; i=$((i+1)); done"
    created = backend.client.json(
        "POST",
        f"/containers/{node}/exec",
        json_body={"Cmd": ["/bin/sh", "-c", script], "AttachStdout": True},
    )
    backend.client.request(
        "POST", f"/exec/{created['Id']}/start", json_body={"Detach": False}, timeout=300
    )
    pid = int(backend.inspect(node)["State"]["Pid"])
    present = len(os.listdir(f"/proc/{pid}/root/tmp"))
    if present < count:
        raise SystemExit(f"only {present} of {count} files were written")


def _deploy(
    work: Path, layout: Path, fleet: str, services: list[tuple[str, str, int]]
) -> Path:
    project = work / fleet
    code, _ = _zd(work, "init", str(project))
    if code != 0:
        raise SystemExit("zerodrift init failed")
    (project / "fleet.yaml").write_text(_spec(fleet, services))
    install_store(
        layout,
        project / ".zerodrift" / "store",
        {f"img{i}": f"v{i}" for i in range(IMAGES)},
    )
    began = time.perf_counter()
    code, _ = _zd(project, "apply", "--env", "dev")
    if code != 0:
        raise SystemExit(f"apply of {fleet} failed with {code}")
    nodes = sum(n for _s, _i, n in services)
    print(f"  deployed {fleet}: {nodes} nodes in {time.perf_counter() - began:.0f} s")
    return project


def _tear_down(backend: PodmanBackend, fleet: str) -> None:
    for node in _nodes(backend, fleet):
        with contextlib.suppress(OperationalError):
            backend.destroy(node, timeout=0)


def run(repeat: int, file_counts: list[int], payload_mb: int) -> None:
    """Deploy each fleet, time check and the peers, print the ratios."""
    work = Path(tempfile.mkdtemp(prefix="zd-check-bench-"))
    try:
        layout = build_busybox_layout(work / "image")
        _variants(work / "image", layout, IMAGES, payload_mb)
        prepare_example_environment()
        with running_podman() as (socket, service):
            os.environ["ZERODRIFT_RUNTIME"] = f"podman://{socket}"
            env = service.environment()
            env["CONTAINER_HOST"] = f"unix://{socket}"
            _measure(
                work,
                layout,
                PodmanBackend(socket),
                env=env,
                repeat=repeat,
                file_counts=file_counts,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measure(
    work: Path,
    layout: Path,
    backend: PodmanBackend,
    *,
    env: dict[str, str],
    repeat: int,
    file_counts: list[int],
) -> None:
    configs = [
        ("n20i1", "20 nodes, 1 image", [("svc0", "img0", 20)]),
        ("n100i1", "100 nodes, 1 image", [("svc0", "img0", 100)]),
        (
            "n100i5",
            "100 nodes, 5 images",
            [(f"svc{i}", f"img{i}", 20) for i in range(IMAGES)],
        ),
    ]
    rows = []
    for fleet, label, services in configs:
        project = _deploy(work, layout, fleet, services)
        full, result = _check(project, repeat)
        quick, _ = _check(project, repeat, "--no-image-content")
        nodes = _nodes(backend, fleet)
        diff_loop = _podman_diff_loop(env, nodes)
        rehash, rehashed = _rehash_every_node(backend, nodes)
        content = result["image_content"]
        assert not result["findings"], result["findings"]
        rows.append((label, len(nodes), full, quick, content, diff_loop, rehash))
        print(
            f"  {label}: check {full:.2f} s (image content "
            f"{content['seconds']:.2f} s: {content['files_hashed']} files, "
            f"{content['bytes_hashed'] / 1e6:.1f} MB hashed), node-only "
            f"{quick:.2f} s; podman diff loop {diff_loop:.2f} s; rehash of "
            f"every node {rehash:.2f} s ({rehashed} files)"
        )
        if fleet == "n100i5":
            _changed_files(
                project,
                backend,
                nodes,
                repeat=repeat,
                counts=file_counts,
                clean=full,
            )
        _tear_down(backend, fleet)
    _summary(rows)


def _changed_files(
    project: Path,
    backend: PodmanBackend,
    nodes: list[str],
    *,
    repeat: int,
    counts: list[int],
    clean: float,
) -> None:
    written = 0
    quick, _ = _check(project, repeat, "--no-image-content")
    print("  100 nodes, 5 images, N files in one node's writable path:")
    print(f"    N={0:>6}: check {clean:.2f} s, node-only {quick:.2f} s")
    for count in counts:
        _write_files(backend, nodes[0], count)
        written = max(written, count)
        seconds, result = _check(project, repeat)
        only, _ = _check(project, repeat, "--no-image-content")
        kinds = {f["kind"] for f in result["findings"]}
        listing = _listing_time(backend, nodes[0], repeat)
        print(
            f"    N={written:>6}: check {seconds:.2f} s, node-only {only:.2f} s; "
            f"listing that node's /tmp {listing * 1000:.0f} ms "
            f"({listing * 1e6 / written:.1f} us per file); "
            f"findings {sorted(kinds) or 'none'}"
        )


def _listing_time(backend: PodmanBackend, node: str, repeat: int) -> float:
    """Best time of the writable-path listing check does for one node."""
    pid = int(backend.inspect(node)["State"]["Pid"])
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        list_writable(pid, ["/tmp"])  # noqa: S108 - the node's writable path
        best = min(best, time.perf_counter() - began)
    return best


def _summary(rows: list[tuple[Any, ...]]) -> None:
    by = {row[0]: row for row in rows}
    small, big1, big5 = (
        by["20 nodes, 1 image"],
        by["100 nodes, 1 image"],
        by["100 nodes, 5 images"],
    )
    print("ratios (check = node checks + full image-content verification):")
    for label, nodes, full, quick, _content, diff_loop, rehash in rows:
        print(
            f"  {label:20s} check {full * 1000 / nodes:6.1f} ms/node, node-only "
            f"{quick * 1000 / nodes:6.1f} ms/node; podman diff loop "
            f"{diff_loop * 1000 / nodes:6.1f} ms/node ({diff_loop / full:.1f}x "
            f"check); rehash of every node {rehash * 1000 / nodes:6.1f} ms/node "
            f"({rehash / full:.1f}x check)"
        )
    print(
        f"  5x nodes (20 -> 100, 1 image): check x{big1[2] / small[2]:.2f}, "
        f"node-only x{big1[3] / small[3]:.2f}, image content x"
        f"{big1[4]['seconds'] / small[4]['seconds']:.2f}, rehash of every node x"
        f"{big1[6] / small[6]:.2f}"
    )
    print(
        f"  5x images (100 nodes, 1 -> 5 images): check x{big5[2] / big1[2]:.2f}, "
        f"image content x{big5[4]['seconds'] / big1[4]['seconds']:.2f} "
        f"(bytes hashed x{big5[4]['bytes_hashed'] / big1[4]['bytes_hashed']:.2f})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="runs, best taken")
    parser.add_argument(
        "--files",
        default="2000,10000",
        help="comma-separated counts of files written into one node",
    )
    parser.add_argument(
        "--payload", type=int, default=32, help="MB of data files per image layer"
    )
    args = parser.parse_args()
    run(args.repeat, [int(n) for n in args.files.split(",")], args.payload)
