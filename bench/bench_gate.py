"""Benchmark: `zerodrift gate` on a 10-image fleet with a 1,000-resource plan.

Target: under 2 s. No peer gate tool is installed on this machine (conftest
and OPA are not packaged in Debian), so the comparison is the lower bound of
any gate: just parsing the same inputs (json.load of the plan, ruamel.yaml
of the spec and manifests), measured in the same run.

Run: .venv/bin/python bench/bench_gate.py [--resources 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from ruamel.yaml import YAML

from zerodrift.gate import GateRequest, HardeningFinding, run_gate
from zerodrift.protect.keys import generate_private_key, key_id

IMAGES = 10
DIGEST = "sha256:" + "ab" * 32
TYPES = ("aws_instance", "aws_security_group", "aws_route53_record", "aws_s3_bucket")
ACTIONS = (
    (["no-op"],) * 4
    + (["create"],) * 3
    + (["update"],)
    + (
        ["create", "delete"],
        ["delete"],
    )
)


def write_fleet(root: Path) -> str:
    """Write the spec, its image sources and a trusted key; return the key id."""
    (root / "keys").mkdir()
    public = (
        generate_private_key()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    (root / "keys" / "bench.pub").write_bytes(public)
    lines = ["version: 1", "name: bench", "images:"]
    for i in range(IMAGES):
        lines += [
            f"  img{i}:",
            "    base: debian:bookworm",
            "    packages: [busybox-static]",
            f"    copy: [{{src: app/img{i}, dest: /srv/app}}]",
        ]
        (root / "app" / f"img{i}").mkdir(parents=True)
        (root / "app" / f"img{i}" / "index.html").write_text(f"image {i}\n")
    lines.append("services:")
    for i in range(IMAGES):
        lines += [f"  svc{i}:", f"    image: img{i}", "    replicas: 2"]
    lines += ["environments:", "  staging: {}", "  prod: {}"]
    lines += ["trust:", "  keys: {bench: keys/bench.pub}"]
    lines += ["  environments: {staging: [bench], prod: [bench]}"]
    lines += ["policy:", "  promotion: {prod: [staging]}", "  terraform:"]
    lines += ["    inventory:"] + [f"      - {t}.*" for t in TYPES]
    (root / "fleet.yaml").write_text("\n".join(lines) + "\n")
    return key_id(public)


def write_plan(path: Path, resources: int) -> None:
    changes = []
    for i in range(resources):
        rtype = TYPES[i % len(TYPES)]
        actions = ACTIONS[i % len(ACTIONS)]
        # In-place updates only on mutable types, so the gate passes.
        if rtype == "aws_instance" and actions == ["update"]:
            actions = ["create", "delete"]
        before = None if actions == ["create"] else {"name": f"r{i}", "size": 1}
        after = None if actions == ["delete"] else {"name": f"r{i}", "size": 2}
        changes.append(
            {
                "address": f"{rtype}.r{i}",
                "mode": "managed",
                "type": rtype,
                "name": f"r{i}",
                "provider_name": "registry.terraform.io/hashicorp/aws",
                "change": {
                    "actions": actions,
                    "before": before,
                    "after": after,
                    "after_unknown": {"id": actions != ["no-op"]},
                    "before_sensitive": {},
                    "after_sensitive": {},
                },
            }
        )
    plan = {
        "format_version": "1.2",
        "terraform_version": "1.9.5",
        "planned_values": {"root_module": {}},
        "resource_changes": changes,
        "timestamp": "2026-12-03T17:00:00Z",
        "applyable": True,
        "complete": True,
        "errored": False,
    }
    path.write_text(json.dumps(plan, indent=2))


def write_manifests(path: Path) -> None:
    docs = []
    for i in range(IMAGES):
        docs.append(
            f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: svc{i}, namespace: bench}}
spec:
  template:
    spec:
      containers:
        - name: app
          image: registry.example.com/img{i}@{DIGEST}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
"""
        )
    path.write_text("---\n".join(docs))


class BenchEvidence:
    """BENCHMARK STAND-IN for the image store: every image fully evidenced."""

    def __init__(self, commit: str, key: str) -> None:
        self.commit = commit
        self.key = key

    def digest(self, image: str) -> str | None:
        return DIGEST

    def signer_key_ids(self, digest: str) -> Collection[str]:
        return {self.key}

    def attestation_types(self, digest: str) -> Collection[str]:
        return {
            "https://slsa.dev/provenance/v1",
            "https://cyclonedx.org/bom",
            "https://zerodrift.dev/golden-manifest/v1",
        }

    def provenance_commit(self, digest: str) -> str | None:
        return self.commit

    def verified_in(self, digest: str) -> Collection[str]:
        return {"staging"}

    def hardening_findings(self, digest: str) -> Sequence[HardeningFinding]:
        return ()


def timed(rounds: int, work: Callable[[], object]) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def parse_only(root: Path) -> None:
    with open(root / "plan.json") as handle:
        json.load(handle)
    yaml = YAML(typ="rt")
    yaml.load((root / "fleet.yaml").read_text())
    list(yaml.load_all((root / "k8s.yaml").read_text()))


def run_cli(cli: list[str], root: Path, env: dict[str, str]) -> None:
    """Run the gate as a process; only the image rules may fail.

    The process has no stand-in: the project's store is empty (nothing is
    built here), so ``image-in-store`` fails for each image and the gate
    exits 1; every other rule must pass.
    """
    done = subprocess.run(cli, cwd=root, env=env, capture_output=True, check=False)
    if done.returncode not in {0, 1}:
        raise SystemExit(f"gate failed ({done.returncode}): {done.stderr[-2000:]!r}")
    failed = {
        r["rule"] for r in json.loads(done.stdout)["results"] if r["status"] == "fail"
    }
    if failed - {"image-in-store"}:
        raise SystemExit(f"unexpected gate failures: {sorted(failed)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--resources", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zd-bench-gate-") as tmp:
        root = Path(tmp) / "fleet"
        root.mkdir()
        key = write_fleet(root)
        write_plan(root / "plan.json", args.resources)
        write_manifests(root / "k8s.yaml")
        env = {**os.environ, "ZERODRIFT_KEY_PASSPHRASE": "bench-passphrase"}
        for cmd in (
            ["git", "init", "-q"],
            ["git", "add", "-A"],
            ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "b"],
        ):
            subprocess.run(cmd, cwd=root, check=True, env=env)
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        request = GateRequest(
            root=root,
            environment="prod",
            plans=[root / "plan.json"],
            manifests=[root / "k8s.yaml"],
            evidence=BenchEvidence(head, key),
        )
        report = run_gate(request)
        assert not report.rejected, [r.message for r in report.failures()]
        gate_s = timed(args.rounds, lambda: run_gate(request))
        parse_s = timed(args.rounds, lambda: parse_only(root))
        cli = [
            sys.executable,
            "-m",
            "zerodrift",
            "gate",
            "--env",
            "prod",
            "--plan",
            "plan.json",
            "--manifests",
            "k8s.yaml",
            "--format",
            "json",
        ]
        # Interleaved, so both see the same machine load.
        version = [sys.executable, "-m", "zerodrift", "--version"]
        pairs = [
            (
                timed(1, lambda: run_cli(cli, root, env)),
                timed(
                    1, lambda: subprocess.run(version, check=True, capture_output=True)
                ),
            )
            for _ in range(args.rounds)
        ]
        cli_s = statistics.median(p[0] for p in pairs)
        start_s = statistics.median(p[1] for p in pairs)
        own_s = statistics.median(p[0] - p[1] for p in pairs)
        size = (root / "plan.json").stat().st_size
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print(
        f"fleet: {IMAGES} images, plan: {args.resources} resources "
        f"({size / 1e6:.1f} MB), manifests: {IMAGES} Deployments; "
        f"{len(report.results)} results"
    )
    print(
        f"gate (library, run_gate)     {gate_s * 1000:8.1f} ms  median of {args.rounds}"
    )
    print(f"parse inputs only (bound)    {parse_s * 1000:8.1f} ms")
    print(f"gate (CLI process, + audit)  {cli_s * 1000:8.1f} ms")
    print(f"CLI start-up (--version)     {start_s * 1000:8.1f} ms")
    print(f"CLI minus start-up (paired)  {own_s * 1000:8.1f} ms")
    print(f"ratio gate / parse-only      {gate_s / parse_s:8.2f}x")
    load = os.getloadavg()[0]
    print(f"load average (1 min) {load:.2f}")
    print(f"target < 2 s, end to end (CLI): {'met' if cli_s < 2 else 'MISSED'}")


if __name__ == "__main__":
    main()
