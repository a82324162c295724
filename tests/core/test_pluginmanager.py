"""The plugin manager: discovery, duplicates, hook validation, switches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from tenfra import hookimpl
from tenfra.errors import PluginError
from tenfra.pluginmanager import PluginInfo, PluginManager

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "docs" / "examples" / "tenfra-hello"
BROKEN = ROOT / "tests" / "fixtures" / "tenfra-broken"
BUILTINS = {
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
}


def _plugin(name: str, **hooks: object) -> tuple[types.ModuleType, PluginInfo]:
    module = types.ModuleType(name)
    for hook_name, function in hooks.items():
        setattr(module, hook_name, function)
    info = PluginInfo(
        name=name,
        version="1",
        origin="package",
        distribution=name,
        entry_point=None,
        module=name,
    )
    return module, info


class _Thing:
    def __init__(self, name: str) -> None:
        self.name = name


def test_builtins_are_discovered_through_entry_points() -> None:
    manager = PluginManager()
    assert set(manager.infos) >= BUILTINS
    assert all(manager.infos[name].origin == "builtin" for name in BUILTINS)


def test_registry_collects_items_and_knows_their_owner() -> None:
    manager = PluginManager(load_entry_points=False)

    @hookimpl
    def tenfra_add_resource_types(registry: object) -> None:
        registry.add_resource_type(_Thing("alpha"))  # type: ignore[attr-defined]

    manager.register(
        *_plugin("one", tenfra_add_resource_types=tenfra_add_resource_types)
    )
    registry = manager.resource_types
    assert list(registry) == ["alpha"]
    assert registry.owner_of("alpha") == "one"


def test_duplicate_names_fail_naming_both_plugins() -> None:
    manager = PluginManager(load_entry_points=False)

    @hookimpl
    def tenfra_add_host_sources(registry: object) -> None:
        registry.add_host_source(_Thing("cmdb"))  # type: ignore[attr-defined]

    manager.register(*_plugin("first", tenfra_add_host_sources=tenfra_add_host_sources))
    manager.register(
        *_plugin("second", tenfra_add_host_sources=tenfra_add_host_sources)
    )
    with pytest.raises(PluginError) as caught:
        manager.host_sources  # noqa: B018
    message = str(caught.value)
    assert "'cmdb'" in message
    assert "'first'" in message and "'second'" in message


def test_misspelt_hook_fails_at_start_up() -> None:
    manager = PluginManager(load_entry_points=False)

    @hookimpl
    def tenfra_add_resource_type(registry: object) -> None:  # missing "s"
        pass

    manager.register(
        *_plugin("typo", tenfra_add_resource_type=tenfra_add_resource_type)
    )
    with pytest.raises(PluginError, match="tenfra_add_resource_type"):
        manager.check_pending()


def test_two_plugins_with_one_name_are_refused() -> None:
    manager = PluginManager(load_entry_points=False)
    manager.register(*_plugin("same"))
    with pytest.raises(PluginError, match="Two plugins are named 'same'"):
        manager.register(*_plugin("same"))


def test_site_plugins_load_from_a_folder(tmp_path: Path) -> None:
    (tmp_path / "greeter.py").write_text(
        "from tenfra import hookimpl\n"
        "class G:\n    name = 'greet'\n"
        "@hookimpl\n"
        "def tenfra_add_resource_types(registry):\n"
        "    registry.add_resource_type(G)\n"
    )
    (tmp_path / "_private.py").write_text("raise RuntimeError('never imported')\n")
    manager = PluginManager(load_entry_points=False)
    assert manager.load_site_plugins(tmp_path) == ["site:greeter"]
    assert "greet" in manager.resource_types
    assert manager.infos["site:greeter"].origin == "site"


def test_site_plugin_that_fails_to_import_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("import no_such_module_here\n")
    manager = PluginManager(load_entry_points=False)
    with pytest.raises(PluginError) as caught:
        manager.load_site_plugins(tmp_path)
    assert str(tmp_path / "bad.py") in str(caught.value)
    assert "no_such_module_here" in str(caught.value)


def _pip_target(package: Path, target: Path) -> None:
    """pip-install a plugin package into its own folder (added via PYTHONPATH)."""
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
            str(target),
            str(package),
        ],
        check=True,
        capture_output=True,
        cwd=target.parent,
    )


def _tenfra(
    args: list[str], pythonpath: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ, PYTHONPATH=str(pythonpath), **env)
    if "TENFRA_DISABLE_PLUGINS" not in env:
        environ.pop("TENFRA_DISABLE_PLUGINS", None)
    return subprocess.run(
        [sys.executable, "-m", "tenfra.cli", *args],
        capture_output=True,
        text=True,
        env=environ,
        check=False,
    )


@pytest.fixture(scope="module")
def hello_installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("hello") / "site"
    _pip_target(HELLO, target)
    return target


def test_example_plugin_is_discovered_once_installed(hello_installed: Path) -> None:
    done = _tenfra(["plugins", "--json"], hello_installed)
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert rows["hello"]["version"] == "1.0.0"
    assert rows["hello"]["origin"] == "package"
    assert rows["hello"]["distribution"] == "tenfra-hello"
    assert rows["hello"]["hooks"] == ["tenfra_add_resource_types"]
    assert set(rows) >= BUILTINS

    version = _tenfra(["--version"], hello_installed)
    assert "hello 1.0.0 (package)" in version.stdout


def test_example_plugin_disappears_when_disabled(hello_installed: Path) -> None:
    done = _tenfra(
        ["plugins", "--json"], hello_installed, TENFRA_DISABLE_PLUGINS="hello"
    )
    assert done.returncode == 0, done.stderr
    names = {row["name"] for row in json.loads(done.stdout)}
    assert "hello" not in names
    assert names >= BUILTINS


def test_broken_plugin_gives_one_line_and_exit_code_3(tmp_path: Path) -> None:
    target = tmp_path / "site"
    _pip_target(BROKEN, target)
    done = _tenfra(["plugins"], target)
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    line = lines[0]
    assert line.startswith("tenfra: error: Plugin 'broken' of tenfra-broken 0.0.1")
    assert "'broken = tenfra_broken'" in line
    assert "tenfra_no_such_dependency" in line
    assert "TENFRA_DISABLE_PLUGINS=broken" in line

    # The switch that disables it lets every command work again.
    again = _tenfra(["plugins"], target, TENFRA_DISABLE_PLUGINS="broken")
    assert again.returncode == 0, again.stderr


def _python(
    code: str, pythonpath: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ, PYTHONPATH=str(pythonpath), **env)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environ
    )


def test_trace_switch_writes_hook_calls_to_stderr(hello_installed: Path) -> None:
    code = (
        "from tenfra.pluginmanager import get_plugin_manager\n"
        "print(sorted(get_plugin_manager().resource_types))\n"
    )
    traced = _python(code, hello_installed, TENFRA_TRACE_HOOKS="1")
    assert traced.returncode == 0, traced.stderr
    assert "tenfra_add_resource_types" in traced.stderr
    assert "hello" in traced.stdout

    quiet = _python(code, hello_installed)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
