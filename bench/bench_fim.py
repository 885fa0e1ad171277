"""Benchmark ``zerodrift fim`` against Debian's AIDE on the same tree.

Generates a deterministic tree (default 100,000 entries, 2 GiB: mostly small
files, some large ones, symbolic links, varied modes), then times ``init``
and ``check`` of both tools with a warm and a cold page cache, changes 100
files, adds 10 and deletes 10 (both tools must report exactly those), and
samples the peak memory of each tool's whole process tree. It prints the
machine's own limits measured in the same run (SHA-256 throughput, a
stat-only walk, reading every byte) so the distance to them is visible.

Run as root (AIDE is installed with apt-get if missing; dropping the page
cache needs root)::

    .venv/bin/python bench/bench_fim.py                 # the full benchmark
    .venv/bin/python bench/bench_fim.py --files 20000 --gib 0.4 --no-cold
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ZERODRIFT = ROOT / ".venv" / "bin" / "zerodrift"
PASSPHRASE = "bench-passphrase-not-secret"  # noqa: S105 - a throwaway key


@dataclass
class Run:
    seconds: float
    peak_rss_mib: float
    code: int
    out: str
    max_rss_mib: float = 0.0
    load: float = 0.0


def sample_tree(pid: int) -> tuple[int, int]:
    """Memory of ``pid`` and its descendants (KiB): summed PSS, largest RSS.

    PSS divides pages shared between processes (a forked worker shares most
    of its parent's) among them, so the sum is the tree's real footprint;
    for a single process it equals its resident size minus shared libraries'
    other users. The largest RSS is the highest resident size (VmHWM) any
    one process of the tree reached so far.
    """
    total = largest = 0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
            with open(f"/proc/{current}/status") as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        largest = max(largest, int(line.split()[1]))
            with open(f"/proc/{current}/task/{current}/children") as handle:
                todo.extend(int(c) for c in handle.read().split())
        except (OSError, ValueError):
            continue
    return total, largest


def timed(
    argv: list[str], env: dict[str, str] | None = None, *, memory: bool = True
) -> Run:
    """Run ``argv``; return wall time and the memory of its process tree.

    Memory is measured two ways, the same for both tools, sampled every
    10 ms: the peak of the tree's summed PSS, and the largest resident size
    any single process of the tree reached (its high-water mark, so a peak
    between samples counts). The PSS peak is the highest level held over
    two samples in a row: one sample that reads a parent just before a
    fork and its new child just after counts their shared pages twice (up
    to 40 MiB too much, seen in single samples). The kernel's
    ``ru_maxrss`` is not used: a child started with ``vfork`` inherits
    this script's size as its own.

    Sampling is not free: reading ``smaps_rollup`` walks the process's page
    tables under its memory lock, which slows a run of under a second that
    forks workers by 10 to 30 %. With ``memory=False`` nothing is sampled.
    """
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        text=True,
    )
    peak = largest = previous = 0
    output: list[str] = []
    stdout = proc.stdout
    if stdout is None:  # always a pipe here; this tells the type checker
        raise RuntimeError("no output pipe")
    reader = threading.Thread(target=lambda: output.append(stdout.read()))
    reader.start()
    if not memory:
        proc.wait()
    while proc.poll() is None:
        pss, hwm = sample_tree(proc.pid)
        peak, largest = max(peak, min(pss, previous)), max(largest, hwm)
        previous = pss
        time.sleep(0.01)
    seconds = time.perf_counter() - start
    reader.join()
    return Run(
        seconds,
        peak / 1024,
        proc.returncode,
        "".join(output),
        max_rss_mib=largest / 1024,
        load=load,
    )


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def warm_cache(tree: Path) -> None:
    """Read every file once, so a "warm" run after a cold one is warm."""
    subprocess.run(  # noqa: S602
        f"find {tree} -type f -print0 | xargs -0 cat > /dev/null",
        shell=True,
        check=True,
    )


def generate(tree: Path, files: int, gib: float) -> None:
    """Deterministic tree: 0.1 % large files hold half the bytes."""
    marker = tree.parent / f"marker-{files}-{gib}.done"
    if marker.exists():
        return
    for old in tree.parent.glob("marker-*.done"):
        old.unlink()
    shutil.rmtree(tree, ignore_errors=True)
    rng = random.Random(20261203)
    total = int(gib * (1 << 30))
    large = max(1, files // 1000)
    small = files - large - files // 100
    links = files // 100
    small_bytes = total // 2
    large_size = (total - small_bytes) // large
    block = rng.randbytes(2 << 20)
    modes = [0o644] * 12 + [0o755] * 5 + [0o600, 0o640, 0o4755, 0o2755, 0o444]
    mean = small_bytes // small
    index = 0
    for d1 in range(10):
        for d2 in range(max(1, small // 1000)):
            folder = tree / f"d{d1}" / f"s{d2:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            for _ in range(100):
                if index >= small:
                    break
                size = min(int(rng.expovariate(1 / mean)), 1 << 20)
                path = folder / f"f{index:06d}.dat"
                offset = rng.randrange(0, 1 << 20)
                path.write_bytes(
                    index.to_bytes(8, "big") + block[offset : offset + size]
                )
                os.chmod(path, rng.choice(modes))
                index += 1
    big = tree / "large"
    big.mkdir(parents=True, exist_ok=True)
    for number in range(large):
        with (big / f"blob{number:03d}.bin").open("wb") as handle:
            left = large_size
            handle.write(number.to_bytes(8, "big"))
            while left > 0:
                chunk = block[: min(left, len(block))]
                handle.write(chunk)
                left -= len(chunk)
    linkdir = tree / "links"
    linkdir.mkdir(exist_ok=True)
    for number in range(links):
        target = f"../d{number % 10}/s000/f{number:06d}.dat"
        (linkdir / f"l{number:05d}").symlink_to(target)
    marker.write_text("ok\n")


def machine_limits(tree: Path) -> dict[str, float]:
    """SHA-256 throughput, a stat-only walk and reading every byte."""
    # 64 MiB hashed four times: a bigger buffer would inflate this script,
    # and with it the measured size of every tool it starts.
    buffer = os.urandom(64 << 20)
    start = time.perf_counter()
    for _ in range(4):
        hashlib.sha256(buffer).digest()
    sha = 4 * len(buffer) / (time.perf_counter() - start) / 1e9
    del buffer
    start = time.perf_counter()
    count = 0
    stack = [os.fsencode(tree)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                entry.stat(follow_symlinks=False)
                count += 1
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    walk = time.perf_counter() - start
    start = time.perf_counter()
    warm_cache(tree)
    read = time.perf_counter() - start
    return {"sha256_gb_s": sha, "stat_walk_s": walk, "cat_all_s": read, "n": count}


def aide_config(work: Path, tree: Path) -> Path:
    conf = work / "aide.conf"
    conf.write_text(
        f"database_in=file:{work}/aide.db\n"
        f"database_out=file:{work}/aide.db.new\n"
        f"database_new=file:{work}/aide.db.new\n"
        "gzip_dbout=no\n"
        f"num_workers={os.cpu_count()}\n"
        "report_url=stdout\n"
        "report_level=list_entries\n"
        "Full = ftype+p+i+n+u+g+s+m+c+sha256+l+xattrs+acl\n"
        "Dir = ftype+p+i+u+g+xattrs+acl\n"
        f"{tree} f,l,c,b,p,s Full\n"
        f"{tree} d Dir\n"
    )
    return conf


def aide(conf: Path, action: str) -> Run:
    return timed(["aide", f"--config={conf}", f"--{action}"])


def aide_promote(work: Path) -> None:
    shutil.copyfile(work / "aide.db.new", work / "aide.db")


def aide_counts(out: str) -> dict[str, int]:
    counts = {}
    for line in out.splitlines():
        for kind in ("Added", "Removed", "Changed"):
            value = line.split(":")[-1].strip()
            if line.strip().startswith(f"{kind} entries:") and value.isdigit():
                counts[kind.lower()] = int(value)
    return counts


def zerodrift(project: Path, *args: str, memory: bool = True) -> Run:
    return timed(
        [str(ZERODRIFT), "-C", str(project), "fim", *args],
        env={"ZERODRIFT_KEY_PASSPHRASE": PASSPHRASE},
        memory=memory,
    )


def check_seconds(out: str) -> float:
    """The time a JSON check report says the check took (start-up excluded)."""
    report = json.loads(out[out.index("{") : out.rindex("}") + 1])
    return float(report["seconds"])


def zd_counts(out: str) -> dict[str, int]:
    start = out.index("{")
    report = json.loads(out[start : out.rindex("}") + 1])
    counts = dict(report["counts"])
    counts.pop("unverifiable")
    return counts


def setup_project(work: Path, tree: Path) -> Path:
    project = work / "project"
    shutil.rmtree(project, ignore_errors=True)
    subprocess.run(
        [str(ZERODRIFT), "init", str(project)],
        check=True,
        capture_output=True,
        env={**os.environ, "ZERODRIFT_KEY_PASSPHRASE": PASSPHRASE},
    )
    (project / "fim-rules.yaml").write_text(
        f"version: 1\nalgorithm: sha256\npaths:\n  - path: {tree}\n"
        "    attributes: all\n    severity: high\n"
    )
    return project


def modify(tree: Path) -> None:
    """Change 100 files, add 10, delete 10 (distinct, deterministic)."""
    files = sorted((tree / "d0").rglob("*.dat")) + sorted((tree / "d1").rglob("*.dat"))
    rng = random.Random(7)
    chosen = rng.sample(files, 110)
    for path in chosen[:100]:
        with path.open("ab") as handle:
            handle.write(b"tampered")
    for path in chosen[100:]:
        path.unlink()
    for number in range(10):
        (tree / "d2" / "s000" / f"added{number}.dat").write_bytes(b"new %d" % number)


def tree_arguments(
    doc: str, work: str, room: str, files: int, gib: float
) -> argparse.ArgumentParser:
    """A parser with the work folder and the size of the generated tree."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n", maxsplit=1)[0])
    parser.add_argument(
        "--dir", type=Path, default=Path(work), help=f"work folder ({room})"
    )
    parser.add_argument("--files", type=int, default=files)
    parser.add_argument("--gib", type=float, default=gib)
    return parser


def main() -> int:  # noqa: PLR0915 - the benchmark script, step by step
    parser = tree_arguments(
        __doc__,
        "/tmp/zd-fim-bench",  # noqa: S108 - a disk-backed /tmp here
        "needs about 1.5 x the tree size free",
        100_000,
        2.0,
    )
    parser.add_argument("--no-cold", action="store_true", help="skip cold-cache runs")
    args = parser.parse_args()

    work: Path = args.dir
    work.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(work).free / (1 << 30)
    if free < args.gib * 1.5 + 1:
        print(f"not enough space in {work}: {free:.1f} GiB free", file=sys.stderr)
        return 4
    if shutil.which("aide") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "aide"], check=True)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"load average at the start (1, 5, 15 min): {load}")
    tree = work / "tree"
    print(f"generating {args.files} files / {args.gib} GiB in {tree} …", flush=True)
    generate(tree, args.files, args.gib)
    limits = machine_limits(tree)
    # As an installed package is (pip compiles on install), even where the
    # environment says PYTHONDONTWRITEBYTECODE: timings then exclude
    # compiling zerodrift's own modules (about 0.04 s a run).
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "src")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    startup = min(timed([str(ZERODRIFT), "--version"]).seconds for _ in range(3))
    limits["startup_s"] = startup
    project = setup_project(work, tree)
    conf = aide_config(work, tree)
    aide_version = subprocess.run(
        ["aide", "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[0]
    results: dict[str, Run] = {}
    rules = str(project / "fim-rules.yaml")

    def run_pair(label: str, cold: bool) -> None:
        prep = drop_caches if cold else (lambda: None)
        if not cold:
            warm_cache(tree)  # a cold pair before leaves contents evicted
        prep()
        results[f"zd init {label}"] = zerodrift(project, "init", "--rules", rules)
        prep()
        results[f"aide init {label}"] = aide(conf, "init")
        aide_promote(work)
        prep()
        results[f"zd check --full {label}"] = zerodrift(
            project, "check", "--full", "--format", "json"
        )
        prep()
        results[f"aide check {label}"] = aide(conf, "check")
        prep()
        # Warm: the median of five runs (one sample says little on a shared
        # machine); cold: the first run only, as later ones are warm again.
        # Timed without memory sampling, which would slow this short run;
        # its memory comes from one more, sampled, run. AIDE's database,
        # just written, is flushed first: its writeback would otherwise
        # stall the fsyncs of this short run (the run record, the audit).
        if not cold:
            os.sync()
            time.sleep(2)
        fast = [
            zerodrift(project, "check", "--format", "json", memory=False)
            for _ in range(1 if cold else 5)
        ]
        fast.sort(key=lambda run: run.seconds)
        sampled = zerodrift(project, "check", "--format", "json")
        results[f"zd check (fast) {label}"] = replace(
            fast[len(fast) // 2],
            peak_rss_mib=sampled.peak_rss_mib,
            max_rss_mib=sampled.max_rss_mib,
        )

    run_pair("warm", cold=False)
    if not args.no_cold:
        run_pair("cold", cold=True)
    # Warm again (a second sample), leaving a fresh baseline for the changes.
    run_pair("warm-2", cold=False)
    for name, run in results.items():
        if run.code != 0:
            print(f"{name} failed ({run.code}):\n{run.out[-2000:]}", file=sys.stderr)
            return 4

    modify(tree)
    for old in work.glob("marker-*.done"):
        old.unlink()  # the next run regenerates the tree
    after = {
        "zd full": zerodrift(project, "check", "--full", "--format", "json"),
        "zd fast": zerodrift(project, "check", "--format", "json"),
        "aide": aide(conf, "check"),
    }
    counts = {
        "zd full": zd_counts(after["zd full"].out),
        "zd fast": zd_counts(after["zd fast"].out),
        "aide": aide_counts(after["aide"].out),
    }
    expected = {"added": 10, "removed": 10, "changed": 100}
    report(args, limits, aide_version, results, after, counts, expected)
    return 0 if all(c == expected for c in counts.values()) else 1


def report(  # type: ignore[no-untyped-def]  # noqa: PLR0917
    args, limits, aide_version, results, after, counts, expected
) -> None:
    print()
    print(f"machine: {os.cpu_count()} cores, {os.uname().release}; {aide_version}")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"load average at the end (1, 5, 15 min): {load} (contention if > 0.5)")
    print(
        f"tree: {limits['n']} entries, {args.gib} GiB; limits: SHA-256 "
        f"{limits['sha256_gb_s']:.2f} GB/s per core, stat-only walk "
        f"{limits['stat_walk_s']:.2f} s, reading every byte (cat) "
        f"{limits['cat_all_s']:.2f} s, 'zerodrift --version' start-up "
        f"{limits['startup_s']:.2f} s"
    )
    print(
        f"{'run':28} {'seconds':>8} {'peak PSS MiB':>13} {'max RSS MiB':>12} "
        f"{'load':>5}"
    )
    for name, run in [*results.items(), *(("after " + k, v) for k, v in after.items())]:
        print(
            f"{name:28} {run.seconds:8.2f} {run.peak_rss_mib:13.1f} "
            f"{run.max_rss_mib:12.1f} {run.load:5.1f}"
        )
    for label in ("warm", "warm-2", "cold"):
        if f"aide init {label}" not in results:
            continue
        zd_init = results[f"zd init {label}"].seconds
        aide_init = results[f"aide init {label}"].seconds
        zd_full = results[f"zd check --full {label}"].seconds
        aide_check = results[f"aide check {label}"].seconds
        fast_run = results[f"zd check (fast) {label}"]
        fast = fast_run.seconds
        inner = check_seconds(fast_run.out)
        print(
            f"{label}: init {aide_init / zd_init:.1f}x faster than AIDE (target 2x), "
            f"check --full {aide_check / zd_full:.1f}x faster (target 5x), "
            f"fast check {fast:.2f} s end to end (target < 1 s), {inner:.2f} s "
            "from its start to its end (walk, database, sample)"
        )
    for measure, title in (
        ("peak_rss_mib", "peak PSS of the process tree"),
        ("max_rss_mib", "largest single process RSS"),
    ):
        zd_peak = max(getattr(r, measure) for k, r in results.items() if k[:2] == "zd")
        aide_peak = max(
            getattr(r, measure) for k, r in results.items() if k.startswith("aide")
        )
        print(
            f"memory, {title}: zerodrift {zd_peak:.0f} MiB, AIDE {aide_peak:.0f} "
            f"MiB, ratio {zd_peak / aide_peak:.2f} (target <= 1)"
        )
    for tool, found in counts.items():
        verdict = "exact" if found == expected else f"WRONG (expected {expected})"
        print(f"after 100 changed / 10 added / 10 removed: {tool}: {found} {verdict}")


if __name__ == "__main__":
    sys.exit(main())
