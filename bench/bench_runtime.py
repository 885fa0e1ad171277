"""Runtime benchmark: apply, replace-all and a recovery drill on real podman.

Prints the time per node next to the lower bound measured in the same run
(bare ``podman run`` of the same image with the same hardening options,
then ``podman rm -f`` of the node it replaces), and times planning 10,000
desired against 10,000 actual nodes (pure function).

    .venv/bin/python bench/bench_runtime.py [--replicas 4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.busybox_image import build_busybox_layout, install_store
from tests.support.podman import running_podman
from tests.support.unsafe_cli import unsafe

from zerodrift._cli.main import main
from zerodrift.reconcile.desired import DesiredService
from zerodrift.reconcile.plan import plan_environment
from zerodrift.reconcile.session import set_verifier_factory
from zerodrift.runtime.backend import ActualNode


def bench_planning(services: int = 1000, replicas: int = 10) -> float:
    desired = [
        DesiredService(
            name=f"svc{i}",
            environment="prod",
            replicas=replicas,
            image=f"img{i}",
            image_digest=f"sha256:{i:064x}",
            config={"service": f"svc{i}"},
            config_digest=f"sha256:{i + 1:064x}",
            identity=f"sha256:{i + 2:064x}",
            max_age=86400,
            max_surge=1,
            max_unavailable=0,
            health_timeout=60,
        )
        for i in range(services)
    ]
    actual = []
    recorded = {}
    now = time.time()
    for i in range(services):
        for r in range(replicas):
            stale = r % 2 == 0 and i % 3 == 0
            name = f"prod-svc{i}-{r}"
            actual.append(
                ActualNode(
                    name,
                    name,
                    {
                        "io.zerodrift.managed": "true",
                        "io.zerodrift.fleet": "big",
                        "io.zerodrift.environment": "prod",
                        "io.zerodrift.service": f"svc{i}",
                        "io.zerodrift.identity": f"sha256:{i + 2:064x}",
                        "io.zerodrift.image-digest": "sha256:old"
                        if stale
                        else f"sha256:{i:064x}",
                        "io.zerodrift.config-digest": f"sha256:{i + 1:064x}",
                        "io.zerodrift.generation": "1",
                    },
                    "running",
                    now - 60,
                    facts_digest="f",
                )
            )
            recorded[name] = "f"
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        plan = plan_environment(
            desired,
            actual,
            fleet="big",
            environment="prod",
            now=now,
            recorded_facts=recorded,
        )
        best = min(best, time.perf_counter() - began)
    print(
        f"plan {len(actual)} desired vs {len(actual)} actual nodes: "
        f"{best * 1000:.0f} ms (best of 5), {plan.counts()['replace']} replacements"
    )
    return best


def _zd(project: Path, *args: str) -> float:
    began = time.perf_counter()
    code = main(["-q", "-C", str(project), *args])
    if code != 0:
        raise SystemExit(f"zerodrift {' '.join(args)} failed with {code}")
    return time.perf_counter() - began


def bare_podman(socket_env: dict[str, str], image: str, nodes: int) -> float:
    """Per node: podman run -d (same options) + podman rm -f of a predecessor."""
    options = [
        "--read-only", "--read-only-tmpfs=false", "--cap-drop=ALL",
        "--security-opt=no-new-privileges", "--user=65534:65534",
        "--tmpfs=/tmp:rw,nosuid,nodev,mode=1777,size=64m", "--memory=64m",
        "--cpus=0.25", "--pids-limit=256", "--network=none", "--init",
    ]  # fmt: skip
    began = time.perf_counter()
    previous: str | None = None
    for i in range(nodes):
        name = f"bare-{os.getpid()}-{i}"
        subprocess.run(
            ["podman", "run", "-d", "-q", "--name", name, *options, image],
            check=True, env=socket_env, capture_output=True,
        )  # fmt: skip
        if previous:
            subprocess.run(
                ["podman", "rm", "-f", "-t", "2", previous],
                check=True, env=socket_env, capture_output=True,
            )  # fmt: skip
        previous = name
    subprocess.run(["podman", "rm", "-f", "-t", "0", previous or ""],
                   env=socket_env, capture_output=True, check=False)  # fmt: skip
    return (time.perf_counter() - began) / nodes


def prepare_example_environment() -> None:
    """Unsigned test images may run; the example fleet's key and secrets are set."""
    set_verifier_factory(unsafe)
    os.environ.setdefault("ZERODRIFT_KEY_PASSPHRASE", "bench-passphrase")
    os.environ["SHOP_API_TOKEN"] = "bench-token"  # noqa: S105 - a bench value
    os.environ["SHOP_DB_PASSWORD"] = "bench-password"  # noqa: S105 - a bench value


def bench_fleet(replicas: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="zd-runtime-bench-"))
    try:
        _bench_fleet(work, replicas)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _bench_fleet(work: Path, replicas: int) -> None:
    layout = build_busybox_layout(work / "image")
    prepare_example_environment()
    with running_podman() as (socket, service):
        os.environ["ZERODRIFT_RUNTIME"] = f"podman://{socket}"
        project = work / "shop"
        main(["-q", "init", str(project)])
        spec = project / "fleet.yaml"
        text = spec.read_text().replace(
            "      web: {replicas: 1}\n      api: {replicas: 1}\n",
            f"      web: {{replicas: {replicas}}}\n"
            f"      api: {{replicas: {replicas}}}\n"
            f"      db: {{replicas: {replicas}}}\n",
        )
        spec.write_text(text)
        digests = install_store(
            layout,
            project / ".zerodrift" / "store",
            {"web": "web", "api": "api", "db": "db"},
        )
        nodes = 3 * replicas
        first = _zd(project, "apply", "--env", "dev")
        spec.write_text(spec.read_text().replace("memory: 64Mi", "memory: 65Mi")
                        .replace("memory: 128Mi", "memory: 129Mi"))  # fmt: skip
        replace = _zd(project, "apply", "--env", "dev")
        drill = _zd(project, "recover", "--env", "dev", "--drill")
        env = service.environment()
        env["CONTAINER_HOST"] = f"unix://{socket}"
        bare = bare_podman(
            env, f"localhost/zerodrift/image:{digests['web'][7:39]}", nodes
        )
        print(f"fleet of {nodes} nodes (example fleet, dev, {replicas} replicas each)")
        rows = [
            ("first apply", first),
            ("replace all", replace),
            ("recovery drill", drill),
        ]
        for label, seconds in rows:
            per = seconds / nodes
            print(
                f"  {label:15s} {seconds:6.2f} s  {per:5.2f} s/node  "
                f"bare podman run+rm {bare:5.2f} s/node  "
                f"overhead {per - bare:+.2f} s/node"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--planning-only", action="store_true")
    args = parser.parse_args()
    bench_planning()
    if not args.planning_only:
        bench_fleet(args.replicas)
