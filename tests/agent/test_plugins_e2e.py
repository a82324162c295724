"""Site plugins travel in the signed release; missing plugins refuse their recipes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "docs" / "examples" / "tenfra-hello"

pytestmark = pytest.mark.integration

STAMP = '''\
"""A site plugin: the ``stamp`` resource type."""

from pathlib import Path

import attrs

from tenfra import hookimpl
from tenfra.resource import ResourceType, Result, option


@attrs.frozen(kw_only=True)
class StampOptions:
    path: str = option("File to stamp.")


class Stamp(ResourceType):
    """Write ``stamped`` to a file."""

    name = "stamp"
    Options = StampOptions

    def apply(self, options, ctx):
        path = Path(options.path)
        if path.exists() and path.read_text() == "stamped":
            return Result.ok()
        path.write_text("stamped")
        return Result.changed()


@hookimpl
def tenfra_add_resource_types(registry):
    registry.add_resource_type(Stamp)
'''


def test_site_plugins_are_shipped_and_loaded(
    repo: Any, provider: Any, enrolled: Path, support: Any
) -> None:
    (repo.root / "plugins").mkdir()
    (repo.root / "plugins" / "stamp.py").write_text(STAMP, encoding="utf-8")
    (repo.root / "recipes" / "stamped.yaml").write_text(
        f"targets: web-*\ntasks:\n  - stamp: path={repo.target}/stamp.txt\n",
        encoding="utf-8",
    )
    name = repo.compile_cli("v1")
    provider.wait_release(name)

    done = support.agent(enrolled, "run", "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (repo.target / "stamp.txt").read_text() == "stamped"
    staged = enrolled / "releases" / name / "plugins" / "stamp.py"
    assert staged.read_text() == STAMP


def test_recipe_needing_a_missing_plugin_is_refused(
    tmp_path: Path, repo: Any, provider: Any, enrolled: Path, support: Any
) -> None:
    hello = tmp_path / "hello-site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(hello),
            str(HELLO),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (repo.root / "recipes" / "greet.yaml").write_text(
        f"targets: web-*\ntasks:\n  - hello: path={repo.target}/hello.txt\n",
        encoding="utf-8",
    )
    # CI compiles with tenfra-hello installed; the host does not have it.
    name = repo.compile_cli("v1", env=support.tenfra_env(PYTHONPATH=str(hello)))
    provider.wait_release(name)

    done = support.agent(enrolled, "run", "--once")
    assert done.returncode == 1, done.stdout + done.stderr
    assert not (repo.target / "hello.txt").exists()
    # The recipe that needs no missing plugin still ran.
    assert (repo.target / "version.txt").read_text() == "v1 for web-1 hello"

    run = provider.runs("web-1")[-1]
    assert run["status"] == "failed"
    assert "Recipe 'greet' was not run on host 'web-1'" in run["error"]
    assert "hello 1.0.0" in run["error"]
    assert "Install those plugins" in run["error"]
