"""``tenfra run`` and ``tenfra check`` from the command line."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tenfra.cli import main

ROOT = Path(__file__).resolve().parents[2]
TENFRA = [sys.executable, "-m", "tenfra.cli"]


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return int(info.value.code or 0), out.out, out.err


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A recipe repository in the working folder."""
    (tmp_path / "recipes" / "web").mkdir(parents=True)
    (tmp_path / "recipes" / "web" / "main.yaml").write_text(
        """\
name: web
inputs:
  port: {type: integer, default: 80}
tasks:
  - name: show the port
    debug: msg="port ${{ port }} is ${{ port.__class__.__name__ }}"
  - name: write the config
    write:
      dest: ${{ out }}/web.conf
      value: "port=${{ port }}\\n"
      format: raw
    tags: [config]
  - name: list
    debug: msg="${{ items | join(',') }}"
    if: items is defined
"""
    )
    (tmp_path / "recipes" / "broken.yaml").write_text(
        "tasks:\n  - debug: msg=before\n  - fail: this recipe fails\n"
        "  - debug: msg=after\n"
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_run_prints_a_line_per_task_and_a_summary(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", "web", "--host", "h1", "--state-dir", str(repo / "s")]
    code, out, _ = cli([*args, "-e", f"out={repo}"], capsys)

    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "h1: running web"
    assert re.fullmatch(r"  ok {11}show the port  \(\d+\.\d{3} s\)", lines[1])
    assert lines[2].strip() == "port 80 is int"
    assert re.fullmatch(r"  changed {6}write the config  \(\d+\.\d{3} s\)", lines[3])
    assert re.fullmatch(r"  skipped {6}list  \(\d+\.\d{3} s\)", lines[4])
    assert re.fullmatch(
        r"h1: ok=1 changed=1 failed=0 skipped=1 in \d+\.\d\d s", lines[5]
    )
    assert (repo / "web.conf").read_text() == "port=80\n"

    code, out, _ = cli([*args, "-e", f"out={repo}"], capsys)

    assert code == 0
    assert "changed=0" in out.splitlines()[-1]


def test_extra_vars_are_yaml_values_and_files(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "more.yaml").write_text("items: [a, b]\n")
    args = ["run", "web", "--host", "h1", "--state-dir", str(repo / "s")]

    code, out, _ = cli(
        [*args, "-e", "port=8080", "-e", f"out={repo}", "-e", "@more.yaml"], capsys
    )

    assert code == 0
    assert "port 8080 is int" in out
    assert "a,b" in out
    assert (repo / "web.conf").read_text() == "port=8080\n"


def test_bad_extra_vars_are_usage_errors(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(["run", "web", "-e", "novalue"], capsys)

    assert code == 2
    assert err.strip() == (
        "tenfra: error: -e 'novalue': expected key=value (or @file.yaml); for "
        "example -e port=8080."
    )


def test_an_input_that_breaks_its_rules_is_a_user_error(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(
        ["run", "web", "--host", "h1", "--state-dir", str(repo / "s"), "-e", "port=x"],
        capsys,
    )

    assert code == 2
    assert out == ""  # no "running" header, no zero summary
    assert err.strip() == (
        "tenfra: error: recipes/web/main.yaml:3:9: input 'port' of recipe 'web': "
        "expected an integer, got a string 'x'; the value comes from the vars "
        "(inventory or -e), fix it there"
    )


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ([], "recipes/strict.yaml: recipe 'strict' needs the input 'level'"),
        (["-e", "level=9"], "recipes/strict.yaml:2:10: input 'level' of recipe"),
        (["-e", "level=1", "-e", "mode=z"], "'z' is not one of the choices"),
        (["-e", "level=1", "-e", "name=Bad!"], "input 'name' of recipe 'strict'"),
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_bad_inputs_exit_2_with_one_line_before_anything_runs(
    repo: Path,
    capsys: pytest.CaptureFixture[str],
    given: list[str],
    problem: str,
    as_json: bool,
) -> None:
    (repo / "recipes" / "strict.yaml").write_text(
        """\
inputs:
  level: {type: integer, required: true, min: 1, max: 5}
  mode: {type: string, choices: [a, b], default: a}
  name: {type: string, regex: "[a-z]+", default: x}
tasks:
  - debug: msg=ran
"""
    )
    args = ["run", "strict", "--host", "h1", "--state-dir", str(repo / "s")]
    code, out, err = cli([*args, *given, *(["--json"] if as_json else [])], capsys)

    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("tenfra: error: ")
    assert problem in err


def test_a_failing_task_stops_the_run_with_exit_code_1(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(
        ["run", "broken", "--host", "h1", "--state-dir", str(repo / "s")], capsys
    )

    assert code == 1
    assert "after" not in out
    assert out.splitlines()[-1].startswith("h1: ok=1 changed=0 failed=1 skipped=0")
    assert err.strip() == (
        "tenfra: error: recipes/broken.yaml:3:5: task 'fail msg=this recipe fails' "
        "of recipe 'broken' failed: this recipe fails"
    )


def test_json_report(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(
        [
            "run",
            "web",
            "--host",
            "h1",
            "--state-dir",
            str(repo / "s"),
            "--json",
            "--check",
            "-e",
            f"out={repo}",
        ],
        capsys,
    )

    data = json.loads(out)
    assert code == 0
    assert data["host"] == "h1"
    assert data["check"] is True
    assert data["counts"]["would-change"] == 1
    assert [t["status"] for t in data["recipes"][0]["tasks"]] == [
        "ok",
        "would-change",
        "skipped",
    ]
    assert not (repo / "web.conf").exists()


def test_tags_and_recipe_given_as_a_path(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(
        [
            "run",
            "recipes/web/main.yaml",
            "--host",
            "h1",
            "--state-dir",
            str(repo / "s"),
            "--tags",
            "config,other",
            "-e",
            f"out={repo}",
        ],
        capsys,
    )

    assert code == 0
    assert "write the config" in out
    assert "show the port" not in out
    assert (repo / "web.conf").exists()


def test_unknown_recipe(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(["run", "wbe"], capsys)

    assert code == 2
    assert err.strip() == (
        "tenfra: error: no recipe 'wbe' in recipes (did you mean 'web'?); "
        "known recipes: broken, web."
    )


def test_inventory_vars_and_an_unknown_host(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "inventory.yaml").write_text(
        f"vars: {{out: {repo}, port: 9090}}\nhosts: [web-01]\n"
    )
    state = str(repo / "s")

    code, out, _ = cli(["run", "web", "--host", "web-01", "--state-dir", state], capsys)
    assert code == 0
    assert "port 9090 is int" in out

    code, _, err = cli(["run", "web", "--host", "nope", "--state-dir", state], capsys)
    assert code == 2
    assert err.strip() == (
        "tenfra: error: inventory.yaml: host 'nope' is not in the inventory; pass "
        "--host NAME with one of its hosts, or --inventory another file."
    )


def test_site_plugins_of_the_repository_are_loaded(repo: Path) -> None:
    (repo / "plugins").mkdir()
    (repo / "plugins" / "greet.py").write_text(
        "import attrs\n"
        "from tenfra import hookimpl\n"
        "from tenfra.resource import ResourceType, Result\n"
        "@attrs.frozen\n"
        "class Options:\n"
        "    who: str\n"
        "class Greet(ResourceType):\n"
        "    name = 'greet'\n"
        "    Options = Options\n"
        "    free_form = 'who'\n"
        "    def apply(self, options, ctx):\n"
        "        return Result.ok(message=f'hello {options.who}')\n"
        "@hookimpl\n"
        "def tenfra_add_resource_types(registry):\n"
        "    registry.add_resource_type(Greet)\n"
        "def shout(ctx, text):\n"
        "    return {'text': text.upper()}\n"
    )
    (repo / "recipes" / "site.yaml").write_text(
        "tasks:\n  - greet: there\n"
        "  - python: {function: 'greet:shout', args: {text: hi}}\n"
        "    out: s\n"
        "  - debug: msg=${{ s.text }}\n"
    )

    done = subprocess.run(
        [
            *TENFRA,
            "run",
            "site",
            "--host",
            "h1",
            "--state-dir",
            str(repo / "s"),
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=repo,
    )

    assert done.returncode == 0, done.stderr
    tasks = json.loads(done.stdout)["recipes"][0]["tasks"]
    assert tasks[0]["message"] == "hello there"
    assert tasks[2]["message"] == "HI"


def test_the_examples_converge(tmp_path: Path) -> None:
    examples = tmp_path / "examples"
    shutil.copytree(ROOT / "examples", examples)
    state = str(tmp_path / "state")
    base = [*TENFRA, "run", "--state-dir", state, "--host", "web-01"]
    runs = {
        "showcase": ["-e", f"root={tmp_path}/showcase"],
        "greeting": ["-e", f"root={tmp_path}/greeting"],
    }

    for recipe, extra in runs.items():
        first = subprocess.run(
            [*base, recipe, *extra], capture_output=True, text=True, cwd=examples
        )
        second = subprocess.run(
            [*base, recipe, *extra, "--json"],
            capture_output=True,
            text=True,
            cwd=examples,
        )

        assert first.returncode == 0, first.stdout + first.stderr
        assert "changed=0" not in first.stdout.splitlines()[-1]
        assert second.returncode == 0, second.stderr
        counts = json.loads(second.stdout)["counts"]
        assert counts["changed"] == 0
        assert counts["failed"] == 0


def test_check_validates_recipes_inventory_and_suites(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT / "examples")

    code, out, err = cli(["check", "."], capsys)

    assert code == 0, err
    match = re.fullmatch(
        r"checked (\d+) recipes, (\d+) test suites, 1 inventories: no problems\n", out
    )
    assert match is not None, out
    assert int(match.group(1)) >= 4
    assert int(match.group(2)) >= 2


def test_check_reports_a_bad_suite_and_inventory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "ok.yaml").write_text("tasks: []\n")
    (tmp_path / "inventory.yaml").write_text("hosts: [a]\nbogus: 1\n")
    (tmp_path / "bad.test.yaml").write_text("name: x\n")
    monkeypatch.chdir(tmp_path)

    code, out, err = cli(["check"], capsys)

    assert code == 2
    problems = err.strip().splitlines()
    assert len(problems) == 2
    assert problems[0].startswith("tenfra: error: inventory.yaml:2:1: ")
    assert problems[1].startswith("tenfra: error: bad.test.yaml")
    assert out.strip() == (
        "checked 1 recipes, 1 test suites, 1 inventories: 2 problems"
    )
