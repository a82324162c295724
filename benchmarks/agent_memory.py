"""Agent daemon idle memory: installed package and zipapp, against a real provider.

Usage::

    .venv/bin/python benchmarks/agent_memory.py            # 20 s of idle samples
    .venv/bin/python benchmarks/agent_memory.py --full     # 60 s
    .venv/bin/python benchmarks/agent_memory.py --no-zipapp

A release (one recipe of ten files) is compiled and served by a real
``tenfra provider serve``; an agent is enrolled with a short poll interval
and started as a daemon (``tenfra agent run``), once from the installed
package and once as the zipapp (``tenfra agent bundle``) under the system
python3.  After its first apply, the daemon's RSS and PSS
(/proc/PID/smaps_rollup) are sampled every 0.2 s while no cycle child is
alive (idle), and the peak RSS of the cycle children (each poll-and-apply
runs in a forked child) is recorded for contrast.  Target (DESIGN §12): idle
RSS under 50 MB.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from _common import (
    STATE,
    TENFRA,
    BenchError,
    Provider,
    describe_machine,
    loadavg,
    machine,
    run_checked,
    save_results,
    stop_process,
    table,
    tenfra_env,
)

HOST = "bench-agent"
TARGET_MB = 50.0


def memory_kib(pid: int) -> Optional[tuple[int, int]]:
    """(RSS, PSS) in KiB of one process, None when it is gone."""
    try:
        rss = pss = 0
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
        return rss, pss
    except (OSError, ValueError):
        return None


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def prepare(work: Path) -> tuple[Provider, Path]:
    """A compiled release, a running provider; returns it and the public key."""
    repo = work / "repo"
    recipe = repo / "recipes" / "site"
    (recipe / "assets").mkdir(parents=True)
    dest = work / "dest"
    lines = ["name: site", "targets: all", "tasks:"]
    for i in range(10):
        (recipe / "assets" / f"f{i}.txt").write_text(f"file {i}\n")
        lines += [
            f"  - name: file {i}",
            f"    copy: src=f{i}.txt dest={dest}/f{i}.txt",
        ]
    lines.insert(3, f"  - name: folder\n    mkdir: {dest}")
    (recipe / "main.yaml").write_text("\n".join(lines) + "\n")
    (repo / "inventory.yaml").write_text(f"hosts: [{HOST}]\n")
    run_checked(
        [TENFRA, "keygen", "--out", str(work / "key.pem")],
        env=tenfra_env(),
        what="tenfra keygen",
    )
    run_checked(
        [
            TENFRA,
            "compile",
            "--out",
            str(work / "releases"),
            "--signing-key",
            str(work / "key.pem"),
        ],
        env=tenfra_env(),
        cwd=repo,
        what="tenfra compile",
    )
    provider = Provider(work / "provider", f"file://{work / 'releases'}")
    provider.start()
    public = next(work.glob("key*.pub"), None)
    if public is None:
        raise BenchError(f"tenfra keygen wrote no public key in {work}.")
    return provider, public


def enroll(
    command: list[str], state: Path, provider: Provider, public: Path, interval: float
) -> None:
    run_checked(
        [
            *command,
            "agent",
            "--state-dir",
            str(state),
            "enroll",
            "--provider",
            provider.url,
            "--host",
            HOST,
            "--token",
            provider.token(HOST),
            "--public-key",
            str(public),
            "--interval",
            str(interval),
            "--splay",
            "0",
        ],
        env=tenfra_env(),
        what="tenfra agent enroll",
    )


def last_run(command: list[str], state: Path) -> Optional[dict[str, Any]]:
    done = subprocess.run(
        [*command, "agent", "--state-dir", str(state), "status", "--json"],
        capture_output=True,
        text=True,
        env=tenfra_env(),
        check=False,
    )
    if done.returncode != 0:
        return None
    found: Optional[dict[str, Any]] = json.loads(done.stdout).get("lastRun")
    return found


def measure_daemon(
    label: str,
    command: list[str],
    work: Path,
    *,
    provider: Provider,
    public: Path,
    seconds: float,
) -> dict[str, Any]:
    slug = "".join(ch if ch.isalnum() else "-" for ch in label)
    state = work / f"state-{slug}"
    interval = 5.0
    enroll(command, state, provider, public, interval)
    log = work / f"agent-{slug}.log"
    with open(log, "ab") as handle:
        proc = subprocess.Popen(
            [*command, "agent", "--state-dir", str(state), "run"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=tenfra_env(),
        )
    try:
        deadline = time.monotonic() + 90
        while last_run(command, state) is None:
            if proc.poll() is not None:
                raise BenchError(f"{label}: the agent exited:\n{log.read_text()}")
            if time.monotonic() > deadline:
                raise BenchError(f"{label}: no run within 90 s:\n{log.read_text()}")
            time.sleep(0.5)
        first = last_run(command, state) or {}
        if first.get("status") not in ("ok", "changed"):
            raise BenchError(f"{label}: the first run ended {first}: {log.read_text()}")
        idle_rss: list[int] = []
        idle_pss: list[int] = []
        child_peak = 0
        cycles = set()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            kids = children(proc.pid)
            for kid in kids:
                cycles.add(kid)
                usage = memory_kib(kid)
                if usage:
                    child_peak = max(child_peak, usage[0])
            usage = memory_kib(proc.pid)
            if usage is None:
                raise BenchError(f"{label}: the agent exited:\n{log.read_text()}")
            if not kids:
                idle_rss.append(usage[0])
                idle_pss.append(usage[1])
            time.sleep(0.2)
        if not idle_rss:
            raise BenchError(f"{label}: the agent was never idle while sampled.")
        after = last_run(command, state) or {}
        return {
            "idle_rss_mb": max(idle_rss) / 1024,
            "idle_rss_median_mb": sorted(idle_rss)[len(idle_rss) // 2] / 1024,
            "idle_pss_mb": max(idle_pss) / 1024,
            "cycle_child_peak_rss_mb": child_peak / 1024,
            "cycles_seen": len(cycles),
            "samples": len(idle_rss),
            "last_status": after.get("status"),
        }
    finally:
        stop_process(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="60 s of samples.")
    parser.add_argument("--seconds", type=float, help="Seconds of samples.")
    parser.add_argument("--no-zipapp", action="store_true")
    parser.add_argument(
        "--python", default="/usr/bin/python3", help="Python for the zipapp."
    )
    args = parser.parse_args()
    seconds = args.seconds or (60.0 if args.full else 20.0)

    info = machine()
    print(f"machine: {describe_machine(info)}")
    work = Path(tempfile.mkdtemp(prefix="tenfra-bench-agent-"))
    results: dict[str, Any] = {}
    provider: Optional[Provider] = None
    try:
        provider, public = prepare(work)
        variants = [("installed package", [TENFRA])]
        if not args.no_zipapp:
            pyz = work / "tenfra.pyz"
            run_checked(
                [TENFRA, "agent", "bundle", "-o", str(pyz)],
                env=tenfra_env(TENFRA_ZIPAPP_CACHE=str(STATE / "zipapp-cache")),
                what="tenfra agent bundle",
                timeout=600,
            )
            python = args.python if Path(args.python).exists() else "python3"
            variants.append((f"zipapp ({python})", [python, str(pyz)]))
        for label, command in variants:
            results[label] = measure_daemon(
                label, command, work, provider=provider, public=public, seconds=seconds
            )
            r = results[label]
            print(
                f"{label}: idle RSS {r['idle_rss_mb']:.1f} MB (PSS "
                f"{r['idle_pss_mb']:.1f} MB), cycle child peak "
                f"{r['cycle_child_peak_rss_mb']:.1f} MB, {r['cycles_seen']} cycles "
                f"in {seconds:.0f} s",
                flush=True,
            )
    finally:
        if provider is not None:
            provider.stop()
        shutil.rmtree(work, ignore_errors=True)

    rows = [
        ["agent", "idle RSS (max)", "idle PSS", "cycle child (sampled peak)", "verdict"]
    ]
    verdicts = []
    for label, r in results.items():
        ok = r["idle_rss_mb"] < TARGET_MB
        rows.append(
            [
                label,
                f"{r['idle_rss_mb']:.1f} MB",
                f"{r['idle_pss_mb']:.1f} MB",
                f"{r['cycle_child_peak_rss_mb']:.1f} MB",
                "met" if ok else "NOT met",
            ]
        )
        verdicts.append(
            f"{label}: idle RSS {r['idle_rss_mb']:.1f} MB (target < "
            f"{TARGET_MB:.0f} MB): " + ("met" if ok else "NOT met")
        )
    print()
    print(table(rows))
    print()
    print("\n".join(verdicts))
    path = save_results(
        "agent_memory",
        {
            "machine": info,
            "results": results,
            "verdicts": verdicts,
            "seconds": seconds,
            "loadEnd": loadavg(),
        },
    )
    print(f"\nresults: {path}")


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        print(f"benchmark error: {exc}", file=sys.stderr)
        sys.exit(1)
