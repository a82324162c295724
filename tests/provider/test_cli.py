"""``tenfra provider`` commands as a user runs them (real processes)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def tenfra(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tenfra.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=str(ROOT),
    )


@pytest.fixture
def config_file(tmp_path: Path, admin_hash: str) -> Path:
    path = tmp_path / "provider.yaml"
    path.write_text(
        json.dumps(
            {
                "database": {"url": f"sqlite:///{tmp_path / 'p.db'}"},
                "releases": {"url": str(tmp_path / "releases")},
                "auth": {
                    "secretKey": "cli-test-secret-key-0123456789",
                    "users": [{"name": "admin", "passwordHash": admin_hash}],
                    "approval": True,
                },
                "retention": {"runs": "1d", "logs": "1h"},
                "publicUrl": "https://provider.example",
            }
        )
    )
    return path


def test_hash_password_round_trip() -> None:
    from tenfra.provider.auth import verify_password

    done = tenfra(
        "provider", "hash-password", "--password-stdin", stdin="s3cret-pass\n"
    )
    assert done.returncode == 0, done.stderr
    stored = done.stdout.strip()
    assert stored.startswith("scrypt$")
    assert verify_password("s3cret-pass", stored)
    assert not verify_password("s3cret-pasS", stored)
    short = tenfra("provider", "hash-password", "--password-stdin", stdin="short\n")
    assert short.returncode == 2
    assert "shorter than 8 characters" in short.stderr


def test_commands_refuse_an_unmigrated_database(config_file: Path) -> None:
    done = tenfra("provider", "token", "--config", str(config_file), "--host", "h")
    assert done.returncode == 2
    assert "run 'tenfra provider migrate" in done.stderr
    assert "Traceback" not in done.stderr


def test_migrate_token_approve_prune(config_file: Path) -> None:
    migrated = tenfra("provider", "migrate", "--config", str(config_file))
    assert migrated.returncode == 0, migrated.stderr
    assert "applied migration 1: initial schema" in migrated.stdout
    again = tenfra("provider", "migrate", "--config", str(config_file))
    assert "applied" not in again.stdout

    token = tenfra(
        "provider",
        "token",
        "--config",
        str(config_file),
        "--host",
        "web-1",
        "--ttl",
        "2h",
    )
    assert token.returncode == 0, token.stderr
    assert len(token.stdout.strip()) >= 40
    assert (
        "curl -fsSL https://provider.example/bootstrap/install.sh | sudo sh -s --"
        in token.stderr
    )
    bad_ttl = tenfra(
        "provider",
        "token",
        "--config",
        str(config_file),
        "--host",
        "w",
        "--ttl",
        "soon",
    )
    assert bad_ttl.returncode == 2
    assert "--ttl" in bad_ttl.stderr

    missing = tenfra("provider", "approve", "--config", str(config_file), "web-2")
    assert missing.returncode == 2
    assert "no pending enrolment request" in missing.stderr

    pruned = tenfra("provider", "prune", "--config", str(config_file))
    assert pruned.returncode == 0, pruned.stderr
    assert "0 runs" in pruned.stdout


def test_bad_configuration_is_one_line_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "provider.yaml"
    path.write_text("releases:\n  url: x\n  scanInterval: often\n")
    done = tenfra("provider", "migrate", "--config", str(path))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert (
        f"{path}:3:17: releases.scanInterval: 'often' is not a duration" in done.stderr
    )


def test_prune_removes_old_history(provider: Any) -> None:
    from tenfra.provider.maintenance import prune
    from tenfra.provider.models import (
        HostStatus,
        LogLine,
        RecipeResult,
        Run,
        TaskResult,
    )

    credential = provider.enroll("web-1")
    provider.report(credential, "web-1", id="old")
    provider.report(credential, "web-1", id="new")
    provider.post("/api/v1/logs", credential, json={"lines": ["old line"]})
    with provider.app.app_context():
        Run.update(received=time.time() - 40 * 86400).where(
            Run.report_id == "old"
        ).execute()
        LogLine.update(received=time.time() - 8 * 86400).execute()
        removed = prune(provider.config)
        assert removed["runs"] == 1
        assert removed["logs"] == 1
        assert [r.report_id for r in Run.select()] == ["new"]
        run = Run.get(Run.report_id == "new")
        assert RecipeResult.select().count() == 1
        assert TaskResult.select().where(TaskResult.run != run.id).count() == 0
        assert HostStatus.get(HostStatus.host == "web-1").report_id == "new"


def test_leases_let_one_replica_run_a_job(provider: Any) -> None:
    from tenfra.provider.models import take_lease

    with provider.app.app_context():
        assert take_lease("job", 60)
        assert not take_lease("job", 60)
        assert take_lease("other", 60)
