"""Container test runner overhead per test (podman), beside the local runner.

Usage::

    .venv/bin/python benchmarks/runner_overhead.py            # K = 1 and 6 tests
    .venv/bin/python benchmarks/runner_overhead.py --full     # K = 1, 6 and 11

A suite of K tests is generated; every test applies the same one-task recipe
(a ``write`` of a small file), once (``idempotence: false``), and asserts the
file's content.  ``tenfra test`` runs it with the podman runner (image
localhost/tenfra-test:bookworm) on one shared machine and with ``clean: true``
(a fresh container per test), and with the local runner for contrast; every
run must pass every test.  The per-test cost is the slope of the median wall
time over K; the recipe's own duration (the run report's task durations, a
few milliseconds) is subtracted to give the runner's overhead per test.
Target (DESIGN §12): under 2 s beyond the recipe itself.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from _common import (
    ROOT,
    TENFRA,
    BenchError,
    describe_machine,
    fmt_seconds,
    linear_fit,
    loadavg,
    machine,
    measure,
    median,
    run_checked,
    save_results,
    table,
    tenfra_env,
)

IMAGE = "localhost/tenfra-test:bookworm"
TARGET = 2.0


def write_repo(root: Path, tests: int, runner: str, *, clean: bool) -> Path:
    """recipes/marker and one suite of ``tests`` tests; returns the suite file."""
    recipe = root / "recipes" / "marker"
    recipe.mkdir(parents=True, exist_ok=True)
    (recipe / "main.yaml").write_text(
        "name: marker\n"
        "inputs:\n"
        "  n: {type: integer}\n"
        "tasks:\n"
        "  - name: marker file\n"
        "    write:\n"
        "      dest: /tmp/tenfra-bench-marker-${{ n }}.txt\n"
        "      value: marker ${{ n }}\n"
        "      format: raw\n"
    )
    if runner == "podman":
        runner_text = f"runner:\n  name: podman\n  image: {IMAGE}\n"
    else:
        runner_text = "runner: local\n"
    lines = [
        f"name: overhead-{runner}-{tests}",
        runner_text.rstrip("\n"),
        f"clean: {'true' if clean else 'false'}",
        "idempotence: false",
        "tests:",
    ]
    for i in range(tests):
        lines += [
            f"  - name: test {i}",
            "    recipe: marker",
            f"    inputs: {{n: {i}}}",
            "    assert:",
            f"      - file: /tmp/tenfra-bench-marker-{i}.txt",
            f"        equals: marker {i}",
        ]
    suite = (
        root / f"overhead-{runner}-{tests}-{'clean' if clean else 'shared'}.test.yaml"
    )
    suite.write_text("\n".join(lines) + "\n")
    return suite


def recipe_seconds(root: Path) -> float:
    """The recipe's own duration: the task durations of a local ``tenfra run``."""
    state = root / "state"
    done = run_checked(
        [
            TENFRA,
            "run",
            "marker",
            "--recipes",
            str(root / "recipes"),
            "-e",
            "n=999",
            "--json",
            "--state-dir",
            str(state),
            "--host",
            "bench",
        ],
        env=tenfra_env(),
        what="tenfra run marker",
    )
    Path("/tmp/tenfra-bench-marker-999.txt").unlink(missing_ok=True)
    report = json.loads(done)
    return float(sum(t["duration"] for r in report["recipes"] for t in r["tasks"]))


def junit_counts(path: Path) -> tuple[int, int]:
    """(tests, failures + errors) of a JUnit XML file."""
    tree = ET.parse(path)
    tests = failures = 0
    for suite in tree.iter("testsuite"):
        tests += int(suite.get("tests", 0))
        failures += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    return tests, failures


def run_suite(suite: Path, runner: str, tests: int, env: dict[str, str]) -> Any:
    junit = suite.with_suffix(".xml")
    sample = measure(
        [TENFRA, "test", str(suite), "--runner", runner, "--junit-xml", str(junit)],
        env=env,
        cwd=suite.parent,
        timeout=900,
    )
    if sample.returncode != 0:
        raise BenchError(
            f"tenfra test {suite.name} failed (exit {sample.returncode}):\n"
            f"{sample.stdout[-2500:]}\n{sample.stderr[-2500:]}"
        )
    count, failed = junit_counts(junit)
    if count != tests or failed:
        raise BenchError(
            f"{suite.name}: {count} tests ran and {failed} failed; expected "
            f"{tests} passing tests."
        )
    return sample


def test_containers(env: dict[str, str]) -> list[str]:
    """Ids of the containers labelled by the test runners (any run's)."""
    return subprocess.run(
        ["podman", "ps", "-aq", "--filter", "label=tenfra.test"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()


def trace_podman(work: Path, env: dict[str, str], tests: int) -> dict[str, Any]:
    """Run the shared-machine suite once with a podman shim that times each call.

    The shim (first on PATH) logs the subcommand and duration of every podman
    invocation the runner makes; the sums per subcommand show where the
    per-test time goes.
    """
    real = shutil.which("podman", path=env.get("PATH"))
    if real is None:
        raise BenchError("podman is not on PATH.")
    shim_dir = work / "shim"
    shim_dir.mkdir(exist_ok=True)
    log = work / "podman-calls.log"
    shim = shim_dir / "podman"
    shim.write_text(
        "#!/bin/sh\n"
        "start=$(date +%s.%N)\n"
        f'{real} "$@"\n'
        "code=$?\n"
        f'echo "$start $(date +%s.%N) $1" >> {log}\n'
        "exit $code\n"
    )
    shim.chmod(0o755)
    traced = dict(env, PATH=f"{shim_dir}:{env.get('PATH', '')}")
    suite = write_repo(work, tests, "podman", clean=False)
    sample = run_suite(suite, "podman", tests, traced)
    calls: dict[str, list[float]] = {}
    for line in log.read_text().splitlines():
        began, ended, command = line.split(" ", 2)
        calls.setdefault(command, []).append(float(ended) - float(began))
    summary = {
        command: {"calls": len(times), "seconds": sum(times)}
        for command, times in sorted(calls.items())
    }
    return {"tests": tests, "wall": sample.wall, "podman": summary}


def cleanup_local(tests: int) -> None:
    for i in range(tests):
        Path(f"/tmp/tenfra-bench-marker-{i}.txt").unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="K = 1, 6, 11.")
    parser.add_argument("--repeat", type=int, help="Runs per configuration.")
    parser.add_argument(
        "--no-trace", action="store_true", help="Skip the timed podman calls."
    )
    args = parser.parse_args()
    sizes = [1, 6, 11] if args.full else [1, 6]
    repeat = args.repeat or (5 if args.full else 3)

    conf = ROOT / ".state" / "containers.conf"
    env = tenfra_env()
    if "CONTAINERS_CONF" not in env:
        if not conf.is_file():
            raise BenchError(f"{conf} is missing; run scripts/setup.sh first.")
        env["CONTAINERS_CONF"] = str(conf)
    if shutil.which("podman") is None:
        raise BenchError("podman is not installed; run scripts/setup.sh first.")
    exists = subprocess.run(
        ["podman", "image", "exists", IMAGE], env=env, check=False
    ).returncode
    if exists != 0:
        raise BenchError(f"the image {IMAGE} is missing; run scripts/setup.sh first.")

    info = machine()
    print(f"machine: {describe_machine(info)}")
    before = set(test_containers(env))
    work = Path(tempfile.mkdtemp(prefix="tenfra-bench-runner-"))
    results: dict[str, dict[int, dict[str, Any]]] = {}
    configs = [
        ("local", False, "local runner"),
        ("podman", False, "podman, one machine"),
        ("podman", True, "podman, clean: true"),
    ]
    try:
        write_repo(work, 1, "local", clean=False)
        own = recipe_seconds(work)
        for k in sizes:
            for runner, clean, label in configs:
                suite = write_repo(work, k, runner, clean=clean)
                walls = []
                started = time.monotonic()
                for _ in range(repeat):
                    if runner == "local":
                        cleanup_local(k)
                    walls.append(run_suite(suite, runner, k, env).wall)
                if runner == "local":
                    cleanup_local(k)
                results.setdefault(label, {})[k] = {
                    "wall": median(walls),
                    "walls": walls,
                    "load": loadavg(),
                }
                print(
                    f"K={k:<3} {label:<22} {fmt_seconds(median(walls)):>9} "
                    f"({repeat} runs, {time.monotonic() - started:.0f} s, load "
                    f"{loadavg()[0]})",
                    flush=True,
                )
        trace = None
        if not args.no_trace:
            trace = trace_podman(work, env, sizes[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
        left = set(test_containers(env)) - before
        if left:
            print(f"note: {len(left)} tenfra.test container(s) of this run left behind")

    rows = [["runner"] + [f"K={k}" for k in sizes] + ["per test", "overhead", "fixed"]]
    verdicts = []
    fits = {}
    for label, by_k in results.items():
        slope, intercept = linear_fit(
            [float(k) for k in sizes], [by_k[k]["wall"] for k in sizes]
        )
        overhead = slope - own
        fits[label] = {"slope": slope, "intercept": intercept, "overhead": overhead}
        rows.append(
            [label]
            + [fmt_seconds(by_k[k]["wall"]) for k in sizes]
            + [fmt_seconds(slope), fmt_seconds(overhead), fmt_seconds(intercept)]
        )
        if label.startswith("podman"):
            verdicts.append(
                f"{label}: {overhead:.2f} s per test beyond the recipe (target < "
                f"{TARGET:.0f} s): " + ("met" if overhead < TARGET else "NOT met")
            )
    print()
    print(f"the recipe itself: {own * 1000:.1f} ms")
    print(table(rows))
    print()
    print("\n".join(verdicts))
    if trace is not None:
        print(
            f"\nwhere the time goes: one shared-machine run of {trace['tests']} tests "
            f"took {trace['wall']:.1f} s; podman calls:"
        )
        for command, entry in trace["podman"].items():
            print(
                f"  podman {command:<8} {entry['calls']:>3} calls "
                f"{entry['seconds']:6.1f} s"
            )
    path = save_results(
        "runner_overhead",
        {
            "machine": info,
            "recipeSeconds": own,
            "results": {
                k: {str(n): v for n, v in d.items()} for k, d in results.items()
            },
            "fits": fits,
            "trace": trace,
            "verdicts": verdicts,
            "loadEnd": loadavg(),
            "repeat": repeat,
        },
    )
    print(f"\nresults: {path}")


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        print(f"benchmark error: {exc}", file=sys.stderr)
        sys.exit(1)
