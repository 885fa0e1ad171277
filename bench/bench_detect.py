"""Detect-and-respond benchmark on real podman: watch latency and replacement.

For each of ``--drifts`` injections into a running node of the example fleet
(a script written into /tmp through ``podman exec``), measures the time from
the change to the finding printed by ``zerodrift watch`` (a separate
process), and from the change to a verified clean replacement by
``zerodrift respond``. Next to it, in the same run: the bare podman replace
time (``podman run -d`` with the same hardening plus ``podman rm -f`` of the
predecessor) from ``bench_runtime``.

    .venv/bin/python bench/bench_detect.py [--drifts 20]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.busybox_image import build_busybox_layout, install_store
from tests.support.podman import running_podman

from bench.bench_runtime import bare_podman, prepare_example_environment
from zerodrift._cli.main import main
from zerodrift.runtime.podman import PodmanBackend

ROOT = Path(__file__).resolve().parents[1]


def _read(stream: IO[bytes], into: queue.Queue[tuple[float, str]]) -> None:
    for raw in stream:
        into.put((time.perf_counter(), raw.decode()))


def _inject(backend: PodmanBackend, node: str, path: str) -> None:
    created = backend.client.json(
        "POST",
        f"/containers/{node}/exec",
        json_body={
            "Cmd": ["/bin/sh", "-c", f"printf '#!/bin/sh\\nid\\n' > {path}"],
            "AttachStdout": True,
        },
    )
    backend.client.request(
        "POST", f"/exec/{created['Id']}/start", json_body={"Detach": False}
    )


def _web_node(backend: PodmanBackend) -> str:
    return sorted(
        n.name
        for n in backend.list_nodes()
        if n.service == "web" and n.managed and n.state == "running"
    )[0]


def _measure(
    project: Path, backend: PodmanBackend, drifts: int
) -> tuple[list[float], list[float]]:
    """Inject ``drifts`` times; return detection and recovery seconds."""
    watcher = subprocess.Popen(
        [sys.executable, "-m", "tests.support.unsafe_cli", "-C", str(project),
         "watch", "--env", "dev", "--format", "json", "--interval", "3600"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env=dict(os.environ),
    )  # fmt: skip
    lines: queue.Queue[tuple[float, str]] = queue.Queue()
    assert watcher.stdout is not None
    threading.Thread(target=_read, args=(watcher.stdout, lines), daemon=True).start()
    time.sleep(3.0)  # start-up, first check, watches in place
    detect: list[float] = []
    recover: list[float] = []
    try:
        for i in range(drifts):
            node = _web_node(backend)
            path = f"/tmp/implant-{i}.sh"  # noqa: S108 - a path inside the node
            began = time.perf_counter()
            _inject(backend, node, path)
            while True:
                seen, line = lines.get(timeout=30)
                files = json.loads(line)["details"].get("files", [])
                if any(f["path"] == path for f in files):
                    break
            detect.append(seen - began)
            with contextlib.redirect_stdout(io.StringIO()):
                code = main(["-q", "-C", str(project), "respond", node])
            if code != 0:
                raise SystemExit(f"respond failed with {code}")
            recover.append(time.perf_counter() - began)
    finally:
        watcher.terminate()
        watcher.wait(timeout=30)
    return detect, recover


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def bench(drifts: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="zd-detect-bench-"))
    try:
        _bench(work, drifts)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _bench(work: Path, drifts: int) -> None:
    layout = build_busybox_layout(work / "image")
    prepare_example_environment()
    with running_podman() as (socket, service):
        os.environ["ZERODRIFT_RUNTIME"] = f"podman://{socket}"
        project = work / "shop"
        main(["-q", "init", str(project)])
        digests = install_store(
            layout,
            project / ".zerodrift" / "store",
            {"web": "web", "api": "api", "db": "db"},
        )
        if main(["-q", "-C", str(project), "apply", "--env", "dev"]) != 0:
            raise SystemExit("apply failed")
        detect, recover = _measure(project, PodmanBackend(socket), drifts)
        env = service.environment()
        env["CONTAINER_HOST"] = f"unix://{socket}"
        bare = bare_podman(env, f"localhost/zerodrift/image:{digests['web'][7:39]}", 10)
        print(f"{drifts} drifts injected into web nodes of the example fleet (dev)")
        print(
            "  change -> finding (watch):        median "
            f"{statistics.median(detect):.3f} s  p99 "
            f"{_percentile(detect, 0.99):.3f} s  max {max(detect):.3f} s"
        )
        print(
            "  change -> verified replacement:   median "
            f"{statistics.median(recover):.3f} s  p99 "
            f"{_percentile(recover, 0.99):.3f} s"
        )
        print(f"  bare podman run + rm (same run):   {bare:.3f} s per node")
        print(
            f"  ratio replacement / bare replace: "
            f"{statistics.median(recover) / bare:.1f}x"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--drifts", type=int, default=20)
    bench(parser.parse_args().drifts)
