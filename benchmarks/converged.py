"""Converged runs side by side: tenfra run, the tenfra agent, ansible-playbook, pyinfra.

Usage::

    .venv/bin/python benchmarks/converged.py            # quick: N = 10, 100
    .venv/bin/python benchmarks/converged.py --full     # N = 10, 100, 200

For every N the same workload is written for each tool: two folders, N small
files copied from the tool's assets and N Jinja2 templates rendered with a
variable, all with mode 0644 (2N + 2 resources).  A first, unmeasured run
converges the machine; the tool must then report no change and its
destination tree must stay byte-for-byte and inode-for-inode the same
(mode, size, mtime, ctime, inode of every path) across every measured run.

Tools (the peers in their own venv under .state/bench/peers, created here
with pinned versions):

- ``tenfra run`` of the recipe on this machine (no provider);
- the agent path: the recipe compiled into a signed release, served by a real
  ``tenfra provider serve``, applied by ``tenfra agent run --once --force``
  (poll, verify the cached bundle, apply, post the report);
- ``ansible-playbook -c local`` (ansible-core), ``gather_facts: false``;
- ``pyinfra @local`` with ``--yes``.

Each configuration runs ``--repeat`` times (default 5; the median is
reported) and prints wall and CPU time, the per-resource slope and the fixed
start-up cost (a least-squares line over N), and the peers' ratios to tenfra.
ansible's per-task cost is high, so ``--ansible-max`` caps the N it runs at
(quick default 100) and ``--ansible-repeat`` its repetitions.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from _common import (
    TENFRA,
    BenchError,
    Provider,
    assert_unchanged,
    describe_machine,
    ensure_peers,
    fmt_seconds,
    linear_fit,
    loadavg,
    machine,
    measure,
    median,
    peer_bin,
    run_checked,
    save_results,
    snapshot,
    table,
    tenfra_env,
)

HOST = "bench-host"
RETRIES = 3


class Undelivered(BenchError):
    """The agent applied the release but its report stayed in the spool."""


GREETING = "hello from the benchmark"


def asset_text(index: int) -> str:
    return f"static file {index}\n" + "x" * 200 + "\n"


def template_text(index: int, open_: str, close: str) -> str:
    return (
        f"# rendered file {index}\n"
        f"greeting = {open_} greeting {close}\n"
        f"index = {index}\n"
    )


# -- workloads ----------------------------------------------------------------------


def write_tenfra(root: Path, dest: Path, n: int) -> Path:
    """recipes/bench/ with its assets; returns the recipes folder."""
    recipe = root / "recipes" / "bench"
    (recipe / "assets").mkdir(parents=True)
    lines = [
        "name: converged benchmark",
        "targets: all",
        "vars:",
        f"  greeting: {GREETING}",
        "tasks:",
        "  - name: copy folder",
        f"    mkdir: {dest}/copy",
        "  - name: template folder",
        f"    mkdir: {dest}/tpl",
    ]
    for i in range(n):
        (recipe / "assets" / f"f{i}.txt").write_text(asset_text(i))
        lines += [
            f"  - name: copy {i}",
            "    copy:",
            f"      src: f{i}.txt",
            f"      dest: {dest}/copy/f{i}.txt",
            '      mode: "0644"',
        ]
    for i in range(n):
        (recipe / "assets" / f"t{i}.j2").write_text(template_text(i, "{{", "}}"))
        lines += [
            f"  - name: template {i}",
            "    template:",
            f"      src: t{i}.j2",
            f"      dest: {dest}/tpl/t{i}.conf",
            '      mode: "0644"',
        ]
    (recipe / "main.yaml").write_text("\n".join(lines) + "\n")
    return root / "recipes"


def write_ansible(root: Path, dest: Path, n: int) -> Path:
    (root / "files").mkdir(parents=True)
    (root / "templates").mkdir()
    lines = [
        "- hosts: localhost",
        "  connection: local",
        "  gather_facts: false",
        "  vars:",
        f'    greeting: "{GREETING}"',
        "    ansible_python_interpreter: '{{ ansible_playbook_python }}'",
        "  tasks:",
        "    - name: copy folder",
        f"      ansible.builtin.file: {{path: {dest}/copy, state: directory}}",
        "    - name: template folder",
        f"      ansible.builtin.file: {{path: {dest}/tpl, state: directory}}",
    ]
    for i in range(n):
        (root / "files" / f"f{i}.txt").write_text(asset_text(i))
        lines += [
            f"    - name: copy {i}",
            "      ansible.builtin.copy:",
            f"        src: f{i}.txt",
            f"        dest: {dest}/copy/f{i}.txt",
            '        mode: "0644"',
        ]
    for i in range(n):
        (root / "templates" / f"t{i}.j2").write_text(template_text(i, "{{", "}}"))
        lines += [
            f"    - name: template {i}",
            "      ansible.builtin.template:",
            f"        src: t{i}.j2",
            f"        dest: {dest}/tpl/t{i}.conf",
            '        mode: "0644"',
        ]
    playbook = root / "playbook.yml"
    playbook.write_text("\n".join(lines) + "\n")
    return playbook


def write_pyinfra(root: Path, dest: Path, n: int) -> Path:
    (root / "files").mkdir(parents=True)
    (root / "templates").mkdir()
    lines = [
        '"""Converged benchmark deploy."""',
        "from pyinfra.operations import files",
        f'files.directory(name="copy folder", path="{dest}/copy")',
        f'files.directory(name="template folder", path="{dest}/tpl")',
    ]
    for i in range(n):
        (root / "files" / f"f{i}.txt").write_text(asset_text(i))
        lines.append(
            f'files.put(name="copy {i}", src="files/f{i}.txt", '
            f'dest="{dest}/copy/f{i}.txt", mode="644")'
        )
    for i in range(n):
        (root / "templates" / f"t{i}.j2").write_text(template_text(i, "{{", "}}"))
        lines.append(
            f'files.template(name="template {i}", src="templates/t{i}.j2", '
            f'dest="{dest}/tpl/t{i}.conf", mode="644", greeting="{GREETING}")'
        )
    deploy = root / "deploy.py"
    deploy.write_text("\n".join(lines) + "\n")
    return deploy


# -- "nothing changed" according to each tool --------------------------------------


def tenfra_changes(stdout: str) -> int:
    report = json.loads(stdout)
    changed = 0
    for recipe in report["recipes"]:
        stack = list(recipe["tasks"])
        while stack:
            task = stack.pop()
            if task["status"] not in ("ok", "skipped"):
                changed += 1
            stack.extend(task.get("children", []))
    return changed


def ansible_changes(stdout: str) -> int:
    for line in stdout.splitlines():
        if line.startswith("localhost") and "changed=" in line:
            fields = dict(
                part.split("=", 1)
                for part in line.split(":", 1)[1].split()
                if "=" in part
            )
            return int(fields["changed"]) + int(fields.get("failed", "0"))
    raise BenchError(f"ansible printed no PLAY RECAP line:\n{stdout[-2000:]}")


def pyinfra_changes(output: str) -> int:
    """Operations pyinfra counted as changed or failed, from its "Grand total" row.

    The results table's columns are Hosts, Success (changed), Error and
    No Change; a converged run has "-" under Success and Error.
    """
    for line in output.splitlines():
        fields = line.split()
        if fields[:2] == ["Grand", "total"] and len(fields) >= 6:
            success, error = fields[3], fields[4]
            return sum(int(v) for v in (success, error) if v != "-")
    raise BenchError(f"pyinfra printed no results table:\n{output[-2000:]}")


# -- tools -------------------------------------------------------------------------


class Tool:
    """How to converge, run and check one tool on one workload."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        cwd: Path,
        env: dict[str, str],
        changes: Callable[[Any], int],
        dest: Path,
    ) -> None:
        self.name = name
        self.argv = argv
        self.cwd = cwd
        self.env = env
        self.changes = changes
        self.dest = dest

    def run_once(self, *, check: bool) -> Any:
        sample = measure(self.argv, env=self.env, cwd=self.cwd)
        if sample.returncode != 0:
            raise BenchError(
                f"{self.name}: exit code {sample.returncode}:\n"
                f"{sample.stdout[-2500:]}\n{sample.stderr[-2500:]}"
            )
        if check:
            count = self.changes(sample)
            if count:
                raise BenchError(
                    f"{self.name}: a converged run reported {count} change(s):\n"
                    f"{sample.stdout[-2500:]}"
                )
        return sample


def tenfra_tool(work: Path, n: int) -> Tool:
    dest = work / "dest"
    recipes = write_tenfra(work / "repo", dest, n)
    return Tool(
        "tenfra run",
        [
            TENFRA,
            "run",
            "bench",
            "--recipes",
            str(recipes),
            "--host",
            HOST,
            "--json",
            "--state-dir",
            str(work / "state"),
        ],
        cwd=work,
        env=tenfra_env(),
        changes=lambda s: tenfra_changes(s.stdout),
        dest=dest,
    )


def ansible_tool(work: Path, n: int) -> Tool:
    dest = work / "dest"
    playbook = write_ansible(work / "play", dest, n)
    env = tenfra_env(
        ANSIBLE_HOME=str(work / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(work / "ansible-tmp"),
        ANSIBLE_LOCALHOST_WARNING="False",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="False",
    )
    return Tool(
        "ansible-playbook -c local",
        [
            str(peer_bin("ansible-playbook")),
            "-i",
            "localhost,",
            "-c",
            "local",
            str(playbook),
        ],
        cwd=playbook.parent,
        env=env,
        changes=lambda s: ansible_changes(s.stdout),
        dest=dest,
    )


def pyinfra_tool(work: Path, n: int) -> Tool:
    dest = work / "dest"
    deploy = write_pyinfra(work / "deploy", dest, n)
    return Tool(
        "pyinfra @local",
        [str(peer_bin("pyinfra")), "@local", str(deploy.name), "--yes"],
        cwd=deploy.parent,
        env=tenfra_env(PYINFRA_PROGRESS="off", NO_COLOR="1", TERM="dumb"),
        changes=lambda s: pyinfra_changes(s.stdout + s.stderr),
        dest=dest,
    )


class AgentPath:
    """The recipe compiled, served by a real provider and applied by the agent."""

    def __init__(self, work: Path, n: int) -> None:
        self.work = work
        self.dest = work / "dest"
        repo = work / "repo"
        write_tenfra(repo, self.dest, n)
        (repo / "inventory.yaml").write_text(f"hosts: [{HOST}]\n")
        run_checked(
            [TENFRA, "keygen", "--out", str(work / "key.pem")],
            env=tenfra_env(),
            what="tenfra keygen",
        )
        out = work / "releases"
        run_checked(
            [
                TENFRA,
                "compile",
                "--out",
                str(out),
                "--signing-key",
                str(work / "key.pem"),
            ],
            env=tenfra_env(),
            cwd=repo,
            what="tenfra compile",
        )
        self.provider = Provider(work / "provider", f"file://{out}", scan_interval=15)
        self.provider.start()
        self.provider.cli("scan")
        self.state = work / "agent-state"
        public = next(work.glob("key*.pub"), None)
        if public is None:
            raise BenchError(f"tenfra keygen wrote no .pub file in {work}.")
        run_checked(
            [
                TENFRA,
                "agent",
                "--state-dir",
                str(self.state),
                "enroll",
                "--provider",
                self.provider.url,
                "--host",
                HOST,
                "--token",
                self.provider.token(HOST),
                "--public-key",
                str(public),
            ],
            env=tenfra_env(),
            what="tenfra agent enroll",
        )
        self.wait_assigned()

    def wait_assigned(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = measure(self.argv(), env=tenfra_env(), cwd=self.work)
            if done.returncode == 0 and "applied" in done.stdout:
                return
            time.sleep(0.5)
        raise BenchError(
            f"the agent applied no release within {timeout:.0f} s; see "
            f"{self.provider.log}."
        )

    def argv(self) -> list[str]:
        return [
            TENFRA,
            "agent",
            "--state-dir",
            str(self.state),
            "run",
            "--once",
            "--force",
        ]

    def changes(self, sample: Any) -> int:
        if "applied" not in sample.stdout:
            raise BenchError(f"the agent did not apply the release: {sample.stdout}")
        if " 0 pending" not in sample.stdout:
            log = self.provider.log.read_text(errors="replace")
            errors = [
                line
                for line in log.splitlines()
                if "ERROR" in line or "WARNING" in line or "Traceback" in line
            ]
            raise Undelivered(
                f"the agent applied but could not deliver its report "
                f"({sample.stdout.strip()}); agent: {sample.stderr.strip()[-500:]}; "
                f"provider: {' | '.join(errors[-5:])[-1000:]}"
            )
        status = json.loads(
            run_checked(
                [TENFRA, "agent", "--state-dir", str(self.state), "status", "--json"],
                env=tenfra_env(),
                what="tenfra agent status",
            )
        )
        counts = status["lastRun"]["counts"]
        return int(sum(v for k, v in counts.items() if k not in ("ok", "skipped")))

    def tool(self) -> Tool:
        return Tool(
            "tenfra agent (provider)",
            self.argv(),
            cwd=self.work,
            env=tenfra_env(),
            changes=self.changes,
            dest=self.dest,
        )

    def close(self) -> None:
        self.provider.stop()


# -- where tenfra's time goes ------------------------------------------------------

PHASES = (
    ("imports (all modules)", "<frozen importlib._bootstrap>", "_find_and_load"),
    ("plugin manager: entry points", "core/pluginmanager.py", "_load_entry_points"),
    ("recipe YAML parsing", "core/yamlio.py", "load_yaml"),
    ("recipe loading (YAML + model)", "core/recipe.py", "load_recipe_file"),
    ("engine: run_recipes", "core/engine.py", "run_recipes"),
    ("template rendering", "core/templating.py", "render_text"),
    ("output (click.echo)", "click/utils.py", "echo"),
)


PHASE_DRIVER = """
import json, sys, time
from pathlib import Path
clock = time.process_time
out = {}
t = clock()
import tenfra.engine, tenfra.recipe
out["import engine and recipe modules"] = clock() - t
t = clock()
from tenfra.pluginmanager import get_plugin_manager
get_plugin_manager()
out["plugin manager (entry points)"] = clock() - t
recipes, state, ids = Path(sys.argv[1]), Path(sys.argv[2]), ["bench"]
from tenfra.yamlio import load_yaml
text = (recipes / "bench" / "main.yaml").read_text()
t = clock()
load_yaml(text, "main.yaml")
out["YAML parse alone (ruamel)"] = clock() - t
t = clock()
recipe_set = tenfra.recipe.RecipeSet(recipes)
recipe_set.closure(ids)
out["recipe load (YAML + model)"] = clock() - t
t = clock()
tenfra.engine.run_recipes(recipe_set, ids, host="h", state_dir=state)
out["engine, first converged run"] = clock() - t
t = clock()
tenfra.engine.run_recipes(recipe_set, ids, host="h", state_dir=state)
out["engine, second run in-process"] = clock() - t
print(json.dumps(out))
"""


def phase_times(work: Path, n: int) -> dict[str, float]:
    """CPU seconds of each phase of a converged run, measured without a profiler."""
    tool = tenfra_tool(work, n)
    tool.run_once(check=False)
    recipes = work / "repo" / "recipes"
    sample = measure(
        [sys.executable, "-c", PHASE_DRIVER, str(recipes), str(work / "state")],
        env=tool.env,
        cwd=work,
    )
    if sample.returncode != 0:
        raise BenchError(f"the phase driver failed:\n{sample.stderr[-2000:]}")
    times: dict[str, float] = json.loads(sample.stdout)
    return times


def profile_tenfra(work: Path, n: int) -> dict[str, float]:
    """cProfile one converged ``tenfra run`` of N; the phases' share of its time."""
    import pstats

    tool = tenfra_tool(work, n)
    tool.run_once(check=False)
    profile = work / "run.prof"
    argv = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "tenfra.cli"]
    sample = measure(argv + tool.argv[1:], env=tool.env, cwd=tool.cwd)
    if sample.returncode != 0 or tenfra_changes(sample.stdout):
        raise BenchError(
            f"the profiled run failed or changed something:\n{sample.stderr}"
        )
    stats = pstats.Stats(str(profile))
    total = max(
        entry[3]
        for (filename, _, function), entry in stats.stats.items()  # type: ignore[attr-defined]
        if function == "<module>" and filename.endswith("cli.py")
    )
    shares: dict[str, float] = {"total_s": total}
    for label, file_part, function in PHASES:
        found = [
            entry[3]
            for (filename, _, name), entry in stats.stats.items()  # type: ignore[attr-defined]
            if name == function and file_part in filename
        ]
        # Recursive imports nest: the outermost call's cumulative time is the max.
        shares[label] = 100.0 * max(found, default=0.0) / total if total else 0.0
    return shares


# -- the benchmark ------------------------------------------------------------------


def bench_tool(tool: Tool, repeat: int) -> dict[str, Any]:
    tool.run_once(check=False)  # converge
    tool.run_once(check=True)  # warm the page cache; must already be converged
    walls: list[float] = []
    cpus: list[float] = []
    retried: list[str] = []
    while len(walls) < repeat:
        before = snapshot(tool.dest)
        try:
            sample = tool.run_once(check=True)
        except Undelivered as exc:
            # The run is not counted; the report waits in the agent's spool and
            # goes with the next run.  Recorded, and fatal when it persists.
            assert_unchanged(before, snapshot(tool.dest), tool.name)
            retried.append(str(exc))
            print(f"  warning: {exc}", flush=True)
            if len(retried) > RETRIES:
                raise
            continue
        assert_unchanged(before, snapshot(tool.dest), tool.name)
        walls.append(sample.wall)
        cpus.append(sample.cpu)
    return {
        "wall": median(walls),
        "cpu": median(cpus),
        "walls": walls,
        "cpus": cpus,
        "retried": retried,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="N = 10, 100, 200.")
    parser.add_argument("--sizes", help="Comma-separated N values (overrides).")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--ansible-sizes",
        help="N values for ansible (quick default 2,10: about 2 s per task here).",
    )
    parser.add_argument("--ansible-repeat", type=int, help="Repetitions for ansible.")
    parser.add_argument(
        "--tools",
        default="tenfra,agent,pyinfra,ansible",
        help="Comma-separated subset of tenfra,agent,pyinfra,ansible.",
    )
    parser.add_argument(
        "--profile",
        type=int,
        metavar="N",
        help="Only profile one converged tenfra run of N (cProfile) and exit.",
    )
    args = parser.parse_args()
    if args.profile:
        work = Path(tempfile.mkdtemp(prefix="tenfra-bench-profile-"))
        try:
            shares = profile_tenfra(work, args.profile)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(
            f"tenfra run, N={args.profile}, under cProfile: "
            f"{shares.pop('total_s'):.2f} s (profiling inflates pure-Python code)"
        )
        for label, share in shares.items():
            print(f"  {share:5.1f}%  {label}")
        work = Path(tempfile.mkdtemp(prefix="tenfra-bench-profile-"))
        try:
            times = phase_times(work, args.profile)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"CPU time per phase, without the profiler (N={args.profile}):")
        for label, seconds in times.items():
            print(f"  {seconds * 1000:7.1f} ms  {label}")
        save_results(
            f"converged_profile_{args.profile}", {"shares": shares, "cpu": times}
        )
        return
    sizes = [10, 100, 200] if args.full else [10, 100]
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    ansible_sizes = sizes if args.full else [2, 10]
    if args.ansible_sizes:
        ansible_sizes = [int(s) for s in args.ansible_sizes.split(",")]
    ansible_repeat = args.ansible_repeat or (args.repeat if args.full else 3)
    tools = args.tools.split(",")
    plan = [
        (n, key)
        for n in sorted(set(sizes) | set(ansible_sizes))
        for key in tools
        if n in (ansible_sizes if key == "ansible" else sizes)
    ]

    info = machine()
    print(f"machine: {describe_machine(info)}")
    versions = ensure_peers() if {"pyinfra", "ansible"} & set(tools) else {}
    if versions:
        print("peers: " + ", ".join(f"{k} {v}" for k, v in versions.items()))

    results: dict[str, dict[int, dict[str, Any]]] = {}
    failures: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="tenfra-bench-converged-"))
    try:
        for n, key in plan:
            work = base / f"{key}-{n}"
            work.mkdir()
            repeat = ansible_repeat if key == "ansible" else args.repeat
            started = time.monotonic()
            try:
                row, name = bench_one(key, work, n, repeat)
            except BenchError as exc:
                # One broken configuration must not cost the others' results.
                failures.append(f"N={n} {key}: {exc}")
                print(f"N={n:<4} {key}: FAILED: {exc}", flush=True)
                continue
            row["load"] = loadavg()
            results.setdefault(name, {})[n] = row
            print(
                f"N={n:<4} {name:<26} wall {fmt_seconds(row['wall']):>9}  "
                f"cpu {fmt_seconds(row['cpu']):>9}  ({repeat} runs, "
                f"{time.monotonic() - started:.0f} s, load {row['load'][0]})",
                flush=True,
            )
            shutil.rmtree(work, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    report(results, sizes, info, versions, failures)
    if failures:
        raise BenchError(
            f"{len(failures)} configuration(s) failed:\n" + "\n".join(failures)
        )


def bench_one(key: str, work: Path, n: int, repeat: int) -> tuple[dict[str, Any], str]:
    """Set up tool ``key`` for N, measure it; returns its row and display name."""
    agent = None
    if key == "tenfra":
        tool = tenfra_tool(work, n)
    elif key == "agent":
        agent = AgentPath(work, n)
        tool = agent.tool()
    elif key == "ansible":
        tool = ansible_tool(work, n)
    elif key == "pyinfra":
        tool = pyinfra_tool(work, n)
    else:
        raise BenchError(f"unknown tool {key!r}")
    try:
        row = bench_tool(tool, repeat)
    finally:
        if agent is not None:
            agent.close()
    row["resources"] = 2 * n + 2
    row["repeat"] = repeat
    return row, tool.name


def report(
    results: dict[str, dict[int, dict[str, Any]]],
    sizes: list[int],
    info: dict[str, Any],
    versions: dict[str, str],
    failures: list[str],
) -> None:
    columns = sorted({n for by_n in results.values() for n in by_n})
    header = ["tool"] + [f"N={n} wall / cpu" for n in columns]
    header += ["per resource", "fixed cost"]
    rows = [header]
    fits: dict[str, tuple[float, float]] = {}
    for name, by_n in results.items():
        xs = [float(by_n[n]["resources"]) for n in columns if n in by_n]
        ys = [by_n[n]["wall"] for n in columns if n in by_n]
        fits[name] = linear_fit(xs, ys)
        slope, intercept = fits[name]
        cells = [name]
        for n in columns:
            if n in by_n:
                cells.append(
                    f"{fmt_seconds(by_n[n]['wall'])} / {fmt_seconds(by_n[n]['cpu'])}"
                )
            else:
                cells.append("-")
        cells += [
            "-" if math.isnan(slope) else f"{slope * 1000:.2f} ms",
            "-" if math.isnan(slope) else fmt_seconds(intercept),
        ]
        rows.append(cells)
    print()
    print(table(rows))

    def wall_at(name: str, n: int) -> tuple[float, bool]:
        """(median wall, measured?) of ``name`` at N, else from its fitted line."""
        by_n = results.get(name, {})
        if n in by_n:
            return by_n[n]["wall"], True
        slope, intercept = fits.get(name, (float("nan"), float("nan")))
        return slope * (2 * n + 2) + intercept, False

    baseline = results.get("tenfra run", {})
    ratio_rows = [["peer / tenfra run (wall)"] + [f"N={n}" for n in sizes]]
    ratios: dict[str, dict[int, float]] = {}
    for name in results:
        if name == "tenfra run":
            continue
        cells = [name]
        for n in sizes:
            value, measured = wall_at(name, n)
            if n not in baseline or math.isnan(value):
                cells.append("-")
                continue
            got = value / baseline[n]["wall"]
            ratios.setdefault(name, {})[n] = got
            cells.append(f"{got:.1f}x" if measured else f"~{got:.0f}x (line fit)")
        ratio_rows.append(cells)
    if len(ratio_rows) > 1 and baseline:
        print()
        print(table(ratio_rows))
        # CPU time hardly depends on what else the machine runs; wall does.
        cpu_rows = [["peer / tenfra run (CPU)"] + [f"N={n}" for n in sizes]]
        for name, by_n in results.items():
            if name == "tenfra run":
                continue
            cpu_rows.append(
                [name]
                + [
                    f"{by_n[n]['cpu'] / baseline[n]['cpu']:.1f}x"
                    if n in by_n and n in baseline
                    else "-"
                    for n in sizes
                ]
            )
        print()
        print(table(cpu_rows))

    verdicts = []
    if 100 in baseline:
        wall = baseline[100]["wall"]
        verdicts.append(
            f"tenfra run, N=100: {fmt_seconds(wall)} wall (target < 1 s): "
            + ("met" if wall < 1 else "NOT met")
        )
        for name, factor in (
            ("pyinfra @local", 20),
            ("ansible-playbook -c local", 100),
        ):
            if 100 in ratios.get(name, {}):
                got = ratios[name][100]
                how = "" if 100 in results[name] else " (peer extrapolated)"
                verdicts.append(
                    f"{name} / tenfra at N=100: {got:.1f}x{how} (target >= "
                    f"{factor}x): " + ("met" if got >= factor else "NOT met")
                )
    if verdicts:
        print()
        print("\n".join(verdicts))

    path = save_results(
        "converged",
        {
            "machine": info,
            "peers": versions,
            "results": {
                k: {str(n): v for n, v in d.items()} for k, d in results.items()
            },
            "fits": {k: {"slope": s, "intercept": i} for k, (s, i) in fits.items()},
            "ratios": {k: {str(n): v for n, v in d.items()} for k, d in ratios.items()},
            "verdicts": verdicts,
            "failures": failures,
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
