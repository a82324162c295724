"""The examples' site plugin: the authorized_keys filter and the two facts."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICDX3bOouDbii3GjtPWyrWjVlvesVP5RC0ppkz0G+kO7"


@pytest.fixture(scope="module")
def fleet() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "examples_site_fleet", EXAMPLES / "plugins" / "fleet.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_keys_become_lines_with_options_and_comments(fleet: ModuleType) -> None:
    text = fleet.authorized_keys(
        [
            f"{KEY} ada@laptop",
            {"key": KEY, "comment": "ada@ci", "options": 'from="10.0.0.0/8"'},
        ]
    )
    assert text == (f'{KEY} ada@laptop\nfrom="10.0.0.0/8" {KEY} ada@ci\n')
    assert fleet.authorized_keys(None) == ""
    assert fleet.authorized_keys(KEY) == f"{KEY}\n"


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (["ssh-ed25519"], "does not start with a key type"),
        (["AAAAC3Nza... ada"], "does not start with a key type"),
        (["ssh-ed25519 AAAAbroken ada"], "has a damaged base64 part"),
        ([KEY.replace("ssh-ed25519", "ssh-rsa")], "has a damaged base64 part"),
        ([{"comment": "no key"}], "give 'key'"),
        (42, "needs a list of keys"),
    ],
)
def test_bad_keys_are_refused_with_the_reason(
    fleet: ModuleType, keys: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        fleet.authorized_keys(keys)


def test_facts_describe_this_machine(fleet: ModuleType) -> None:
    container = fleet.container()
    assert isinstance(container, str)
    expected = "systemd" if Path("/run/systemd/system").is_dir() else "other"
    assert fleet.init_system() == expected


def test_a_damaged_key_fails_the_users_task_with_its_location(tmp_path: Path) -> None:
    """Through `tenfra run`: the filter's message reaches the user, located."""
    state = tmp_path / "state"
    extra = tmp_path / "extra.yaml"
    extra.write_text(
        json.dumps(
            {
                "sysroot": str(tmp_path / "root"),
                "sandboxed": True,
                "user_accounts": [
                    {"name": "eve", "comment": "Eve", "keys": ["ssh-ed25519 AAAAx eve"]}
                ],
                "former_users": [],
            }
        ),
        encoding="utf-8",
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tenfra.cli",
            "run",
            "--state-dir",
            str(state),
            "--host",
            "web-01",
            "users",
            "-e",
            f"@{extra}",
        ],
        capture_output=True,
        text=True,
        cwd=EXAMPLES,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "recipes/users/main.yaml:" in done.stdout + done.stderr
    assert "key #1 (ssh-ed25519 AAAAx...) has a damaged base64 part" in (
        done.stdout + done.stderr
    )
    assert not (
        tmp_path / "root" / "home" / "eve" / ".ssh" / "authorized_keys"
    ).exists()
