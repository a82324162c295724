"""Compile a generated fleet (hosts x recipes) and report wall time and peak memory.

Usage::

    python benchmarks/compile_scale.py                       # 1,000 hosts x 20 recipes
    python benchmarks/compile_scale.py --hosts 10000 --recipes 100   # DESIGN §12 target

The repository is generated in a temporary folder: an inventory with one vars
mapping per host and ten groups, recipes with templates, assets, dependencies
and ``otherHosts``; one recipe in ten targets every host, the others one group
each (so a host receives about a fifth of the recipes).  ``tenfra compile``
then runs in its own process, so its peak RSS (``ru_maxrss`` of the child) is
measured alone, with its CPU time (user + system), which does not depend on
what else the machine runs.  The target is under 30 s and under 1 GB for
10,000 hosts x 100 recipes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GROUPS = 10


def generate(root: Path, hosts: int, recipes: int, fmt: str = "yaml") -> None:
    """Write the inventory, recipes/ (with assets) and plugins/ under ``root``."""
    width = len(str(hosts))
    per_group = -(-hosts // GROUPS)
    host_entries = {
        f"node-{index:0{width}d}": {
            "vars": {
                "address": f"10.{index // 65536}.{index // 256 % 256}.{index % 256}",
                "secret": f"s3cret-{index}",
            }
        }
        for index in range(1, hosts + 1)
    }
    groups = {
        f"g{group}": {
            "hosts": (
                f"node-[{group * per_group + 1:0{width}d}:"
                f"{min(hosts, (group + 1) * per_group):0{width}d}]"
            ),
            "vars": {"tier": f"tier-{group}"},
        }
        for group in range(GROUPS)
    }
    inventory = {
        "vars": {"domain": "example.com", "ntp": ["0.pool.ntp.org"]},
        "hosts": host_entries,
        "groups": groups,
    }
    # JSON is YAML too: the same inventory either way, in both file formats.
    text = json.dumps(inventory, indent=None if fmt == "json" else 1)
    if fmt == "yaml":
        lines = ["vars:", "  domain: example.com", "  ntp: [0.pool.ntp.org]", "hosts:"]
        for name, entry in host_entries.items():
            lines.append(f"  {name}:")
            lines.append("    vars:")
            for key, value in entry["vars"].items():
                lines.append(f"      {key}: {value}")
        lines.append("groups:")
        for name, group in groups.items():
            lines.append(f"  {name}:")
            lines.append(f'    hosts: "{group["hosts"]}"')
            lines.append("    vars:")
            lines.append(f"      tier: {group['vars']['tier']}")
        text = "\n".join(lines) + "\n"
    (root / "inventory.yaml").write_text(text)

    for index in range(recipes):
        folder = root / "recipes" / f"r{index:03d}"
        (folder / "assets").mkdir(parents=True)
        # One recipe in ten targets every host, the others one group each; group
        # recipes call the first recipe, and one asks for the "db" hosts' vars.
        target = "all" if index % 10 == 0 else f"g{index % GROUPS}"
        depends = "dependencies: [r000]\n" if index % 10 else ""
        others = (
            f'otherHosts: ["node-[{1:0{width}d}:{20:0{width}d}]"]\n'
            if index == 3
            else ""
        )
        (folder / "main.yaml").write_text(
            f"name: recipe {index}\n"
            f"targets: {target}\n"
            f"{depends}{others}"
            "vars:\n"
            f"  service: svc-{index}\n"
            "tasks:\n"
            "  - name: configuration\n"
            "    template:\n"
            "      src: app.conf.j2\n"
            f"      dest: /etc/svc-{index}/app.conf\n"
            '      mode: "0644"\n'
            "  - name: static files\n"
            f"    copy: src=static dest=/srv/svc-{index}/\n"
            "  - name: marker\n"
            "    exec:\n"
            f"      cmd: touch /var/lib/svc-{index}.done\n"
            f"      creates: /var/lib/svc-{index}.done\n"
        )
        (folder / "assets" / "app.conf.j2").write_text(
            f"# recipe {index}\nlisten {{{{ address }}}}:{8000 + index}\n"
            "server_name {{ inventory_hostname }}.{{ domain }}\n"
        )
        (folder / "assets" / "static").mkdir()
        (folder / "assets" / "static" / "index.html").write_text(
            f"<h1>service {index}</h1>\n"
        )
    (root / "plugins").mkdir()
    (root / "plugins" / "acme.py").write_text('"""Site plugin of the benchmark."""\n')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--recipes", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="Keep the generated files.")
    parser.add_argument(
        "--inventory-format",
        choices=("yaml", "json"),
        default="yaml",
        help="Write the inventory as block YAML (default) or as JSON.",
    )
    parser.add_argument(
        "--out", help="Release URL (default: a local temporary folder)."
    )
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="tenfra-bench-"))
    try:
        started = time.monotonic()
        generate(root, args.hosts, args.recipes, args.inventory_format)
        print(
            f"generated {args.hosts} hosts x {args.recipes} recipes "
            f"({args.inventory_format} inventory) in "
            f"{time.monotonic() - started:.1f} s ({root})"
        )
        tenfra = [sys.executable, "-m", "tenfra.cli"]
        verbose = ["-v"]
        subprocess.run(
            [*tenfra, "keygen", "--out", str(root / "key.pem")],
            check=True,
            capture_output=True,
        )
        out = args.out or str(root / "out")
        env = dict(os.environ, SOURCE_DATE_EPOCH="1893456000")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_before = before.ru_utime + before.ru_stime
        started = time.monotonic()
        done = subprocess.run(
            [
                *tenfra,
                *verbose,
                "compile",
                "--out",
                out,
                "--signing-key",
                str(root / "key.pem"),
                "--progress-every",
                str(max(1000, args.hosts // 10)),
                "--json",
            ],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.monotonic() - started
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_kib = usage.ru_maxrss
        cpu = usage.ru_utime + usage.ru_stime - cpu_before
        sys.stderr.write(done.stderr)
        if done.returncode != 0:
            print(f"compile failed with exit code {done.returncode}")
            sys.exit(1)
        result = json.loads(done.stdout)
        size = sum(p.stat().st_size for p in (root / "out").rglob("*") if p.is_file())
        size_text = f"{size / 1e6:.0f} MB written" if not args.out else ""
        print(
            f"compile: {result['hosts']} hosts, {result['recipes']} recipes: "
            f"{wall:.1f} s wall (in-process {result['seconds']:.1f} s), "
            f"{cpu:.1f} s CPU, "
            f"peak RSS {peak_kib / 1024:.0f} MiB, {size_text}"
        )
        if args.hosts >= 10000 and args.recipes >= 100:
            print(
                "target (DESIGN §12, 10,000 x 100): under 30 s and under 1 GB -> "
                + ("met" if wall < 30 and peak_kib < 1024 * 1024 else "NOT met")
            )
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
