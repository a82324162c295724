"""A wheel built from the repository works in a fresh virtual environment.

Needs PyPI for the dependencies (the registry this machine reaches), so it
runs with the integration tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

IMPORT_ALL = """
import importlib, pkgutil, sys
import tenfra
failed = []
names = ["tenfra"]
for info in pkgutil.walk_packages(tenfra.__path__, "tenfra."):
    if info.name == "tenfra.testing":
        continue  # a pytest plugin; pytest is not a runtime dependency
    names.append(info.name)
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{name}: {type(exc).__name__}: {exc}")
print("\\n".join(failed) or "ALL IMPORTED", len(names))
"""


@pytest.mark.integration
def test_wheel_installs_and_imports_every_module(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "-w",
            str(dist),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    wheels = list(dist.glob("tenfra-*.whl"))
    assert len(wheels) == 1

    venv = tmp_path / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    extras = f"{wheels[0]}[provider,docker,s3,postgres]"
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--only-binary",
            ":all:",
            extras,
        ],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr[-2000:]

    imported = subprocess.run(
        [str(python), "-c", IMPORT_ALL], capture_output=True, text=True, cwd=tmp_path
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith("ALL IMPORTED"), imported.stdout

    listed = subprocess.run(
        [str(venv / "bin" / "tenfra"), "plugins", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    for builtin in (
        "files",
        "commands",
        "system",
        "network",
        "control",
        "hostsources",
        "varssources",
        "facts",
        "filters",
        "runners",
        "webhook",
    ):
        assert rows[builtin]["origin"] == "builtin"
        assert rows[builtin]["version"] == "0.1.0"
        assert rows[builtin]["module"] == f"tenfra.plugins.{builtin}"
    assert any(row["hooks"] for row in rows.values())
