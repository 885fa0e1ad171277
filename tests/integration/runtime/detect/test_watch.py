"""``zerodrift watch`` as a process: events trigger checks; SIGTERM stops it."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest

from tests.integration.runtime.detect.test_check import ENV, _exec, _node
from zerodrift.runtime.podman import PodmanBackend

pytestmark = [pytest.mark.podman, pytest.mark.slow]


def _lines(stream: IO[bytes], into: queue.Queue[str]) -> None:
    for raw in stream:
        into.put(raw.decode())


def _next(lines: queue.Queue[str], until: float) -> str | None:
    try:
        return lines.get(timeout=max(0.0, until - time.monotonic()))
    except queue.Empty:
        return None


def test_watch_finds_a_script_among_a_burst_of_files_within_seconds(
    rt_project: Path, cli: Any, backend: PodmanBackend
) -> None:
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    web = _node(backend, rt_project, "web")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.unsafe_cli",
            "-C",
            str(rt_project),
            "watch",
            "--env",
            ENV,
            "--format",
            "json",
            "--interval",
            "600",  # only events can trigger a check within the test
        ],
        cwd=Path(__file__).resolve().parents[4],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    out: queue.Queue[str] = queue.Queue()
    err: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    assert proc.stderr is not None
    threading.Thread(target=_lines, args=(proc.stdout, out), daemon=True).start()
    threading.Thread(target=_lines, args=(proc.stderr, err), daemon=True).start()
    try:
        deadline = time.monotonic() + 30
        while (line := _next(err, deadline)) is not None and "watching" not in line:
            pass
        assert line is not None, "watch did not start"
        time.sleep(1.0)  # the first full check and the watches are in place
        assert out.empty()  # a clean environment reports nothing

        started = time.monotonic()
        _exec(
            backend,
            web,
            "i=0; while [ $i -lt 2000 ]; do echo $i > /tmp/f$i; i=$((i+1)); done; "
            "printf '#!/bin/sh\\nid\\n' > /tmp/zz-implant.sh",
            detach=False,
        )
        found: dict[str, Any] = {}
        deadline = time.monotonic() + 20
        while "executable-added" not in found:
            line = _next(out, deadline)
            assert line is not None, "no finding within 20 s"
            item = json.loads(line)
            found[item["kind"]] = item
        elapsed = time.monotonic() - started
        files = found["executable-added"]["details"]["files"]
        assert [f["path"] for f in files] == ["/tmp/zz-implant.sh"]
        assert elapsed < 10, elapsed
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    assert code == 0
    rest = "".join(iter(lambda: _next(err, time.monotonic() + 1) or "", ""))
    assert "stopped:" in rest
