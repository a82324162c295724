"""``tenfra schema``: generated from the option classes, in text, JSON and Markdown."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tenfra.commands.schema import all_types, render_markdown

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference" / "resource-types.md"


def tenfra(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tenfra.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_list_names_every_type_with_its_summary() -> None:
    done = tenfra("schema")
    assert done.returncode == 0, done.stderr
    names = [line.split()[0] for line in done.stdout.splitlines()]
    for name in ("copy", "exec", "package", "download", "http_listener", "temp_dir"):
        assert name in names
    assert "Copy files from the recipe's assets" in done.stdout


def test_one_type_shows_options_defaults_choices_and_example() -> None:
    done = tenfra("schema", "file")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("file: Make a path a file, a directory")
    assert "path (string, required)" in out
    assert 'state (string, "file") one of: file, directory, link, absent' in out
    assert "mode (file mode, unset)" in out
    assert "Example:" in out and "state: link" in out


def test_json_is_complete() -> None:
    done = tenfra("schema", "download", "--json")
    info = json.loads(done.stdout)
    assert info["name"] == "download" and info["plugin"] == "network"
    options = {o["name"]: o for o in info["options"]}
    assert options["url"]["required"] is True
    assert options["stripComponents"] == {
        "name": "stripComponents",
        "type": "integer",
        "required": False,
        "default": 0,
        "description": "Leading path components removed from archive members.",
    }
    listener = json.loads(tenfra("schema", "http_listener", "--json").stdout)
    routes = {o["name"]: o for o in listener["options"]}["routes"]
    assert {f["name"] for f in routes["fields"]} >= {"path", "status", "json"}


def test_unknown_type_is_a_one_line_error() -> None:
    done = tenfra("schema", "cpy")
    assert done.returncode == 2
    assert "There is no resource type 'cpy'. Did you mean 'copy'?" in done.stderr
    assert "Traceback" not in done.stderr


def test_markdown_reference_covers_every_type(tmp_path: Path) -> None:
    target = tmp_path / "types.md"
    done = tenfra("schema", "--markdown", "-o", str(target))
    assert done.returncode == 0, done.stderr
    text = target.read_text()
    for info in all_types():
        assert f"\n## {info['name']}\n" in text
    assert "| `src` | string | required |" in text
    assert "```yaml" in text


def test_reference_page_in_docs_is_generated_and_current() -> None:
    expected = render_markdown(all_types())
    assert REFERENCE.is_file() and REFERENCE.read_text() == expected, (
        "docs/reference/resource-types.md is out of date; regenerate it with "
        "'tenfra schema --markdown -o docs/reference/resource-types.md'"
    )
