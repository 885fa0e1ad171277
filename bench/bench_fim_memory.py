"""Memory of ``zerodrift fim`` on a tree of a million files, next to AIDE's.

The main benchmark (``bench_fim.py``) compares speed on 100,000 entries;
this one checks the other promise: memory stays bounded however large the
tree, because baselines are streamed and workers hold bounded batches. It
generates a deterministic tree (default 1,000,000 files, 1 GiB, with the
generator of ``bench_fim.py``), then runs ``fim init``, the fast check and
``check --full`` of zerodrift and AIDE's ``--init`` (its check takes many
minutes at this size and its memory is that of its init), each with the
peak memory of its whole process tree sampled as ``bench_fim.py`` does.

Run as root from the repository (AIDE is installed with apt-get if
missing)::

    .venv/bin/python bench/bench_fim_memory.py
    .venv/bin/python bench/bench_fim_memory.py --files 200000 --gib 0.2
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_fim import (
    ROOT,
    Run,
    aide,
    aide_config,
    generate,
    setup_project,
    tree_arguments,
    zerodrift,
)


def main() -> int:
    """Generate the tree, run both tools, print time and memory."""
    parser = tree_arguments(
        __doc__,
        "/tmp/zd-fim-memory",  # noqa: S108 - a disk-backed /tmp here
        "about 2 GiB and a million inodes free",
        1_000_000,
        1.0,
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root (AIDE reads every file of the tree)", file=sys.stderr)
        return 2
    if shutil.which("aide") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "aide"], check=True)
    work: Path = args.dir
    work.mkdir(parents=True, exist_ok=True)
    tree = work / "tree"
    print(f"generating {args.files} files / {args.gib} GiB in {tree} …", flush=True)
    generate(tree, args.files, args.gib)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "src")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    project = setup_project(work, tree)
    rules = str(project / "fim-rules.yaml")
    runs: dict[str, Run] = {
        "zd init": zerodrift(project, "init", "--rules", rules),
        "zd check (fast)": zerodrift(project, "check", "--format", "json"),
        "zd check --full": zerodrift(project, "check", "--full", "--format", "json"),
        "aide init": aide(aide_config(work, tree), "init"),
    }
    failed = [name for name, run in runs.items() if run.code != 0]
    for name in failed:
        print(f"{name} failed ({runs[name].code}):\n{runs[name].out[-2000:]}")
    entries = sum(1 for _ in tree.rglob("*")) + 1
    print(f"tree: {entries} entries; load average {os.getloadavg()[0]:.1f}")
    print(f"{'run':<20}{'seconds':>9}{'peak PSS MiB':>14}{'max RSS MiB':>13}")
    for name, run in runs.items():
        print(
            f"{name:<20}{run.seconds:>9.1f}{run.peak_rss_mib:>14.0f}"
            f"{run.max_rss_mib:>13.0f}"
        )
    ours = max(r.peak_rss_mib for n, r in runs.items() if n.startswith("zd"))
    theirs = runs["aide init"].peak_rss_mib
    print(
        f"peak PSS: zerodrift {ours:.0f} MiB (any command), AIDE init "
        f"{theirs:.0f} MiB, ratio {ours / theirs:.2f}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
