"""Network probes run inside a node's network namespace (see ADR 0022).

Hardened nodes have no published ports and, usually, no tools to probe
themselves with. A forked child of zerodrift joins the node's network
namespace with ``setns(2)`` and connects to ``127.0.0.1:<port>`` there, so
the probe needs nothing from the image, opens nothing to the host network,
and sees exactly what a peer on the node's networks would see.
"""

from __future__ import annotations

import ctypes
import os
import select
import socket
import time

__all__ = ["probe_in_netns"]

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def probe_in_netns(
    pid: int, port: int, *, http_path: str | None, timeout: float
) -> tuple[bool, str]:
    """Connect to ``port`` inside the network namespace of process ``pid``.

    Args:
        pid: A process of the node (its init process).
        port: TCP port to connect to on the node's loopback.
        http_path: Send ``GET http_path`` and require a 2xx or 3xx answer;
            ``None`` checks only that the port accepts connections.
        timeout: Seconds for the whole probe.

    Returns:
        Whether the probe passed, and a short description of what was seen.
    """
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child
        os.close(read_end)
        result = b"fail unknown"
        try:
            result = _child_probe(pid, port, http_path, timeout)
        except BaseException as exc:
            result = f"fail {type(exc).__name__}: {exc}".encode()[:200]
        finally:
            os.write(write_end, result)
            os._exit(0)
    os.close(write_end)
    try:
        deadline = time.monotonic() + timeout + 1
        chunks = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ready, _, _ = select.select([read_end], [], [], remaining)
            if not ready:
                break
            chunk = os.read(read_end, 512)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
        _reap(child)
    text = b"".join(chunks).decode("utf-8", "replace") or "fail probe timed out"
    status, _, detail = text.partition(" ")
    return status == "ok", detail


def _reap(child: int) -> None:
    try:
        finished, _ = os.waitpid(child, os.WNOHANG)
        if finished == 0:
            os.kill(child, 9)
            os.waitpid(child, 0)
    except ChildProcessError:
        pass


def _child_probe(
    pid: int, port: int, http_path: str | None, timeout: float
) -> bytes:  # pragma: no cover - runs in the forked child
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        return f"fail setns: {os.strerror(errno)}".encode()
    os.close(fd)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        if http_path is None:
            return b"ok port accepts connections"
        request = (
            f"GET {http_path} HTTP/1.0\r\nHost: localhost\r\n"
            "User-Agent: zerodrift-health\r\n\r\n"
        )
        sock.sendall(request.encode())
        head = sock.recv(256).split(b"\r\n", 1)[0].decode("latin-1")
    parts = head.split()
    if len(parts) >= 2 and parts[1].isdigit() and 200 <= int(parts[1]) < 400:
        return f"ok {head}".encode()
    return f"fail {head or 'no HTTP answer'}".encode()
