"""``tenfra inventory`` list, groups, host and explain, run as the real command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

import attrs
import pytest

from tenfra.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@attrs.frozen
class Done:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def tenfra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Done]:
    """Run ``tenfra inventory ARGS`` in this process, through the real entry point."""

    def run(*args: str, cwd: Path = EXAMPLES, **env: str) -> Done:
        monkeypatch.chdir(cwd)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            main(["inventory", *args])
        out, err = capsys.readouterr()
        code = info.value.code
        return Done(code if isinstance(code, int) else 1, out, err)

    return run


def _subprocess(*args: str, cwd: Path = EXAMPLES) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tenfra.cli", "inventory", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


def test_list_every_host_of_the_example(tenfra: Callable[..., Done]) -> None:
    done = tenfra("list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [
        "web-01",
        "web-02",
        "web-03",
        "db-01",
        "db-02",
        "cache-01",
        "bastion-01",
        "staging-web-01",
    ]
    assert lines[3].split(None, 1)[1] == "prod, backend, db"


def test_list_with_a_pattern(tenfra: Callable[..., Done]) -> None:
    done = tenfra("list", "web-[01:02],db,!db-02")
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()] == [
        "web-01",
        "web-02",
        "db-01",
    ]
    assert "3 of 8 hosts match 'web-[01:02],db,!db-02'." in done.stderr


def test_list_json(tenfra: Callable[..., Done]) -> None:
    done = tenfra("list", "ungrouped,staging-*", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "pattern": "ungrouped,staging-*",
        "hosts": [{"name": "staging-web-01", "groups": ["staging"]}],
    }


def test_list_matching_nothing_fails_with_a_hint(tenfra: Callable[..., Done]) -> None:
    done = tenfra("list", "nosuch-*")
    assert done.returncode == 1
    assert "No host of inventory.yaml matches 'nosuch-*'" in done.stderr


def test_bad_pattern_is_one_line_in_a_real_process() -> None:
    done = _subprocess("list", "web-[9:1]")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "tenfra: error: Host pattern 'web-[9:1]': range [9:1] is empty because 9 is "
        "greater than 1; write [1:9]."
    ]


def test_inventory_option_and_environment(
    tmp_path: Path, tenfra: Callable[..., Done]
) -> None:
    (tmp_path / "other.yaml").write_text("hosts: [x1, x2]\n")
    done = tenfra("list", "-i", str(tmp_path / "other.yaml"), cwd=tmp_path)
    assert done.stdout.split() == ["x1", "(ungrouped)", "x2", "(ungrouped)"]
    done = tenfra("list", cwd=tmp_path, TENFRA_INVENTORY=str(tmp_path / "other.yaml"))
    assert done.stdout.split()[0] == "x1"


def test_missing_inventory(tmp_path: Path, tenfra: Callable[..., Done]) -> None:
    done = tenfra("list", cwd=tmp_path)
    assert done.returncode == 2
    assert "inventory.yaml: inventory file not found" in done.stderr
    assert "Traceback" not in done.stderr


def test_invalid_inventory_is_located(
    tmp_path: Path, tenfra: Callable[..., Done]
) -> None:
    (tmp_path / "inventory.yaml").write_text("hosts: [a]\ngroups:\n  g: [a, b]\n")
    done = tenfra("list", cwd=tmp_path)
    assert done.returncode == 2
    assert (
        "tenfra: error: inventory.yaml:3:6: group 'g' names 'b', which is neither a "
        "host nor a group" in done.stderr
    )


def test_groups(tenfra: Callable[..., Done]) -> None:
    done = tenfra("groups")
    assert done.returncode == 0, done.stderr
    names = [line.split()[0] for line in done.stdout.splitlines()]
    assert names == ["prod", "staging", "backend", "web", "cache", "db"]
    assert "    db  " in done.stdout  # depth 2 is indented twice
    rows = json.loads(tenfra("groups", "--json").stdout)
    assert rows[2] == {
        "name": "backend",
        "depth": 1,
        "hosts": ["db-01", "db-02", "cache-01"],
    }


def test_host_shows_every_var_with_its_layer(tenfra: Callable[..., Done]) -> None:
    done = tenfra("host", "web-03")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "host: web-03"
    assert lines[1] == "groups: all, grouped, prod, web"
    rows = {line.split()[0]: line for line in lines[3:]}
    assert rows["nginx_workers"].split()[1] == "8"
    assert rows["nginx_workers"].endswith("<- host vars (inventory.yaml:16:3)")
    assert rows["timezone"].endswith(
        "<- inventory varsSources[0] file vars/common.yaml"
    )
    assert rows["log_level"].endswith(
        "<- group prod varsSources[0] file vars/prod.yaml"
    )
    assert rows["domain"].endswith("<- inventory vars (inventory.yaml:5:3)")


def test_host_json(tenfra: Callable[..., Done]) -> None:
    done = tenfra("host", "db-01", "--json")
    document = json.loads(done.stdout)
    assert document["groups"] == ["prod", "backend", "db"]
    assert document["vars"]["monitoring_tier"] == {
        "value": "critical",
        "layer": "group backend vars (inventory.yaml:43:5)",
    }
    assert [layer["name"] for layer in document["layers"]][:2] == [
        "inventory vars (inventory.yaml:5:3)",
        "inventory varsSources[0] file vars/common.yaml",
    ]


def test_unknown_host(tenfra: Callable[..., Done]) -> None:
    done = tenfra("host", "web-3")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "tenfra: error: Host 'web-3' is not in the inventory inventory.yaml; did you "
        "mean 'web-03'?"
    )


def test_explain_shows_each_layer_and_the_winner(tenfra: Callable[..., Done]) -> None:
    done = tenfra("explain", "staging-web-01", "environment")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "environment for staging-web-01 (lowest precedence first, * wins):",
        '    inventory vars (inventory.yaml:5:3): "production"',
        '    group staging vars (inventory.yaml:38:5): "staging"',
        '  * host vars (inventory.yaml:29:3): "staging"',
    ]


def test_explain_group_depth_order(tenfra: Callable[..., Done]) -> None:
    done = tenfra("explain", "cache-01", "monitoring_tier", "--json")
    document = json.loads(done.stdout)
    assert [layer["layer"] for layer in document["layers"]] == [
        "group prod vars (inventory.yaml:47:5)",
        "group backend vars (inventory.yaml:43:5)",
    ]
    assert document["value"] == "critical"


def test_explain_undefined_var(tenfra: Callable[..., Done]) -> None:
    done = tenfra("explain", "web-01", "nope")
    assert done.returncode == 1
    assert "'nope' is not set for host 'web-01' by any inventory layer" in done.stderr
