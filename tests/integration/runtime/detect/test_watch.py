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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from tests.integration.runtime.detect.test_check import ENV, _exec, _node
from zerodrift.runtime.podman import PodmanBackend
from zerodrift.runtime.service import PodmanService

pytestmark = [pytest.mark.podman, pytest.mark.slow]


def _lines(stream: IO[bytes], into: queue.Queue[str]) -> None:
    for raw in stream:
        into.put(raw.decode())


def _next(lines: queue.Queue[str], until: float) -> str | None:
    try:
        return lines.get(timeout=max(0.0, until - time.monotonic()))
    except queue.Empty:
        return None


@dataclass
class Watcher:
    """A running ``zerodrift watch --format json`` and its output lines."""

    out: queue.Queue[str]
    err: queue.Queue[str]

    def findings(self, kinds: set[str], within: float) -> dict[str, Any]:
        """Read findings until every kind in ``kinds`` was printed."""
        found: dict[str, Any] = {}
        deadline = time.monotonic() + within
        while not kinds <= set(found):
            line = _next(self.out, deadline)
            assert line is not None, f"no {kinds - set(found)} within {within} s"
            item = json.loads(line)
            found[item["kind"]] = item
        return found


@contextmanager
def watching(project: Path, image_interval: str = "3600") -> Iterator[Watcher]:
    """Run watch on ``project`` until the block ends, then stop it with SIGTERM.

    Scheduled checks are an hour apart: within a test only events can
    trigger a check. The image content is verified at start and then every
    ``image_interval`` seconds.
    """
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.unsafe_cli",
            "-C",
            str(project),
            "watch",
            "--env",
            ENV,
            "--format",
            "json",
            "--interval",
            "3600",
            "--image-interval",
            image_interval,
        ],
        cwd=Path(__file__).resolve().parents[4],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    watcher = Watcher(queue.Queue(), queue.Queue())
    assert proc.stdout is not None
    assert proc.stderr is not None
    threading.Thread(
        target=_lines, args=(proc.stdout, watcher.out), daemon=True
    ).start()
    threading.Thread(
        target=_lines, args=(proc.stderr, watcher.err), daemon=True
    ).start()
    try:
        deadline = time.monotonic() + 30
        while (line := _next(watcher.err, deadline)) is not None:
            if "watching" in line:
                break
        assert line is not None, "watch did not start"
        time.sleep(1.0)  # the first full check and the watches are in place
        assert watcher.out.empty()  # a clean environment reports nothing
        yield watcher
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    assert code == 0
    rest = "".join(iter(lambda: _next(watcher.err, time.monotonic() + 1) or "", ""))
    assert "stopped:" in rest
    assert " with image content)" in rest
    assert "(0 with image content)" not in rest


def test_watch_finds_a_script_among_a_burst_of_10000_files(
    rt_project: Path, cli: Any, backend: PodmanBackend
) -> None:
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    web = _node(backend, rt_project, "web")
    with watching(rt_project) as watcher:
        started = time.monotonic()
        # Ten thousand new files, then one script sorted after all of them.
        _exec(
            backend,
            web,
            "i=0; while [ $i -lt 10000 ]; do : > /tmp/f$i; i=$((i+1)); done; "
            "printf '#!/bin/sh\\nid\\n' > /tmp/zz-implant.sh",
            detach=False,
        )
        found = watcher.findings({"executable-added"}, within=30)
        elapsed = time.monotonic() - started
    files = found["executable-added"]["details"]["files"]
    assert [f["path"] for f in files] == ["/tmp/zz-implant.sh"]
    assert elapsed < 20, elapsed


def test_watch_keeps_detecting_after_the_podman_service_restarts(
    rt_project: Path,
    cli: Any,
    backend: PodmanBackend,
    podman_service: tuple[str, PodmanService],
) -> None:
    socket, service = podman_service
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    api = _node(backend, rt_project, "api")
    with watching(rt_project) as watcher:
        service.stop()  # the nodes keep running under conmon
        time.sleep(1.5)  # the watcher's event stream breaks meanwhile
        assert service.start() == socket
        # A shell entered through podman: only podman's event stream (now
        # reconnected) can trigger the check that finds it.
        _exec(backend, api, "exec sleep 120", detach=True)
        found = watcher.findings({"foreign-process"}, within=30)
    shell = found["foreign-process"]
    assert shell["subject"] == api
    assert [p["command"] for p in shell["details"]["processes"]] == ["sleep 120"]


def test_watch_verifies_image_content_on_its_own_schedule(
    rt_project: Path, cli: Any, backend: PodmanBackend
) -> None:
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    web = _node(backend, rt_project, "web")
    image = backend.client.json("GET", f"/images/{backend.inspect(web)['Image']}/json")
    page = Path(image["GraphDriver"]["Data"]["UpperDir"]) / "srv" / "www" / "index.html"
    original = page.read_bytes()
    with watching(rt_project, image_interval="2") as watcher:
        # No event reports this write: only the scheduled verification can.
        try:
            page.write_bytes(b"<h1>defaced</h1>\n")
            found = watcher.findings({"image-tampered"}, within=20)
        finally:
            page.write_bytes(original)  # the storage is shared by the session
    tampered = found["image-tampered"]
    assert [c["path"] for c in tampered["details"]["changes"]] == [
        "/srv/www/index.html"
    ]


def test_quiet_watch_leaves_audit_evidence_of_its_checks(
    rt_project: Path, cli: Any
) -> None:
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    log = ("audit", "log", "--action", "check.finished", "--format", "json")
    before = len(json.loads(cli(*log, cwd=rt_project).out)["records"])
    with watching(rt_project) as watcher:
        assert watcher.out.empty()
    records = json.loads(cli(*log, cwd=rt_project).out)["records"][before:]
    # Nothing to report, yet the first check (with the image content) is
    # recorded: compliance counts it as integrity monitoring.
    assert [r["subject"] for r in records] == [ENV]
    assert records[0]["details"]["findings"] == 0
    assert records[0]["details"]["image_content"]["images"] >= 1


# Run in a child process: the signal arrives just before the wake-up pipe
# is drained for a check, the moment at which it used to be lost (the
# handler had set the flag, the drain ate the byte that would have woken
# the wait, and watch slept until the next scheduled check).
_SIGNAL_BEFORE_DRAIN = """
import os, signal, sys, time
import zerodrift.detect.watch as watch
from tests.support.unsafe_cli import main, set_verifier_factory, unsafe

drain = watch._drain_pipe
sent = []

def drain_after_a_signal(fd):
    if not sent:
        sent.append(True)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
    drain(fd)

watch._drain_pipe = drain_after_a_signal
set_verifier_factory(unsafe)
sys.exit(main(sys.argv[1:]))
"""


def test_watch_stops_on_a_signal_that_arrives_while_it_drains_events(
    rt_project: Path, cli: Any
) -> None:
    assert cli("apply", "--env", ENV, cwd=rt_project).code == 0
    args = ("-C", str(rt_project), "watch", "--env", ENV, "--interval", "3600")
    done = subprocess.run(
        [sys.executable, "-c", _SIGNAL_BEFORE_DRAIN, *args],
        cwd=Path(__file__).resolve().parents[4],
        capture_output=True,
        text=True,
        timeout=60,  # the next scheduled check is an hour away
        env=dict(os.environ),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "stopped: 1 check(s)" in done.stderr
