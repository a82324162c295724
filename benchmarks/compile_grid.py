"""Compile scale over a grid of hosts x recipes, through benchmarks/compile_scale.py.

Usage::

    .venv/bin/python benchmarks/compile_grid.py          # {100, 1,000} x {20, 100}
    .venv/bin/python benchmarks/compile_grid.py --full   # {1k, 5k, 10k} x {20, 100}

Each point runs ``compile_scale.py --hosts H --recipes R`` (the compiler's
own benchmark: it generates the repository and measures ``tenfra compile``
in its own process) and reads back the wall time, CPU time and peak RSS it
prints.  The table adds the CPU per host; in quick mode the 10,000 x 100
point's CPU time is extrapolated along the line through the measured host
counts at 100 recipes (compile time grows linearly with the hosts; memory is
reported as measured, not extrapolated).  Target (DESIGN §12): 10,000 hosts x 100
recipes in under 30 s and under 1 GB.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import (
    BenchError,
    describe_machine,
    linear_fit,
    loadavg,
    machine,
    save_results,
    table,
    tenfra_env,
)

SCRIPT = Path(__file__).with_name("compile_scale.py")
LINE = re.compile(
    r"compile: (?P<hosts>\d+) hosts, (?P<recipes>\d+) recipes: (?P<wall>[\d.]+) s "
    r"wall.*?(?P<cpu>[\d.]+) s CPU, peak RSS (?P<rss>\d+) MiB"
)
TARGET_S = 30.0
TARGET_MIB = 1024.0


def point(hosts: int, recipes: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--hosts", str(hosts), "--recipes", str(recipes)],
        capture_output=True,
        text=True,
        env=tenfra_env(),
        timeout=1800,
        check=False,
    )
    match = LINE.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise BenchError(
            f"compile_scale.py --hosts {hosts} --recipes {recipes} failed "
            f"(exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    return {
        "hosts": hosts,
        "recipes": recipes,
        "wall": float(match["wall"]),
        "cpu": float(match["cpu"]),
        "rss_mib": float(match["rss"]),
        "load": loadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="Up to 10,000 x 100.")
    parser.add_argument("--hosts", help="Comma-separated host counts.")
    parser.add_argument("--recipes", help="Comma-separated recipe counts.")
    args = parser.parse_args()
    hosts = [1000, 5000, 10000] if args.full else [100, 1000]
    recipes = [20, 100]
    if args.hosts:
        hosts = [int(h) for h in args.hosts.split(",")]
    if args.recipes:
        recipes = [int(r) for r in args.recipes.split(",")]

    info = machine()
    print(f"machine: {describe_machine(info)}")
    points = []
    for r in recipes:
        for h in hosts:
            p = point(h, r)
            points.append(p)
            print(
                f"{h:>6} hosts x {r:>3} recipes: {p['wall']:.1f} s wall, "
                f"{p['cpu']:.1f} s CPU, peak RSS {p['rss_mib']:.0f} MiB "
                f"(load {p['load'][0]})",
                flush=True,
            )

    rows = [["hosts x recipes", "wall", "CPU", "CPU per host", "peak RSS"]]
    for p in points:
        rows.append(
            [
                f"{p['hosts']} x {p['recipes']}",
                f"{p['wall']:.1f} s",
                f"{p['cpu']:.1f} s",
                f"{p['cpu'] / p['hosts'] * 1000:.2f} ms",
                f"{p['rss_mib']:.0f} MiB",
            ]
        )
    print()
    print(table(rows))

    verdicts = []
    target = [p for p in points if p["hosts"] == 10000 and p["recipes"] == 100]
    if target:
        p = target[0]
        ok = p["wall"] < TARGET_S and p["rss_mib"] < TARGET_MIB
        verdicts.append(
            f"10,000 x 100: {p['wall']:.1f} s wall ({p['cpu']:.1f} s CPU), "
            f"{p['rss_mib']:.0f} MiB (target < 30 s, < 1 GB): "
            + ("met" if ok else "NOT met")
        )
    else:
        at_100 = sorted(
            (p for p in points if p["recipes"] == 100), key=lambda q: q["hosts"]
        )
        if len(at_100) >= 2:
            slope, intercept = linear_fit(
                [float(p["hosts"]) for p in at_100], [p["cpu"] for p in at_100]
            )
            cpu = slope * 10000 + intercept
            verdicts.append(
                f"10,000 x 100, extrapolated along the line through "
                f"{', '.join(str(p['hosts']) for p in at_100)} hosts x 100 "
                f"({slope * 1000:.1f} ms CPU per host): about {cpu:.0f} s CPU "
                f"(target < 30 s wall): "
                + ("likely met" if cpu < TARGET_S else "likely NOT met")
                + "; run --full to measure it and its memory"
            )
    if verdicts:
        print()
        print("\n".join(verdicts))
    path = save_results(
        "compile_grid",
        {"machine": info, "points": points, "verdicts": verdicts, "loadEnd": loadavg()},
    )
    print(f"\nresults: {path}")


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        print(f"benchmark error: {exc}", file=sys.stderr)
        sys.exit(1)
