"""Release integrity end to end: a real agent against a real provider process.

tests/agent/test_e2e_provider.py already proves *tampered*, *older* and
*other-host* bundles end to end, and tests/core/test_release.py proves every
verification rule on its own (the tampering table).  This module adds the
remaining attacks end to end (truncated, unsigned, expired), and the rollback
design: an old release is re-issued under a new sequence with
``tenfra compile --rollback-to``, agents accept it, and a replay of the old
signed release is still refused.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tenfra import release as rel

from .conftest import TENFRA, run_agent, tenfra_env


def machine_files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def status(state: Path) -> dict[str, Any]:
    done = run_agent(state, "status", "--json", check=True)
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def _expired_bundle(repo: Any) -> tuple[bytes, bytes]:
    """A correctly signed, newer bundle for web-1 whose validity ended in 2021."""
    from tenfra.compiler import CompileOptions, compile_release

    (repo.root / "recipes" / "site" / "main.yaml").write_text(
        (repo.root / "recipes" / "site" / "main.yaml")
        .read_text()
        .replace("v2 for", "v9 for"),
        encoding="utf-8",
    )
    result = compile_release(
        CompileOptions(
            inventory=repo.root / "inventory.yaml",
            recipes=repo.root / "recipes",
            out=repo.url,
            signing_key=repo.key,
            created=dt.datetime(2021, 1, 1, tzinfo=dt.timezone.utc),
            valid_for=dt.timedelta(days=1),
        )
    )
    data, signature = repo.bundle(result.name, "web-1")
    assert b'"expires":"2021-01-02T00:00:00Z"' in data
    return data, signature


@pytest.mark.parametrize("attack", ["truncated", "unsigned", "expired"])
def test_bad_bundles_are_rejected_before_anything_runs(
    repo: Any, served: Any, enrolled: Path, attack: str
) -> None:
    state = enrolled
    served.wait_release(repo.compile("v1"))
    second = repo.compile("v2")
    served.wait_release(second)
    assert run_agent(state, "run", "--once").returncode == 0
    before = machine_files(repo.target)
    staged_before = sorted(p.name for p in (state / "releases").iterdir())

    data, signature = repo.bundle(second, "web-1")
    if attack == "truncated":
        data = data[: len(data) // 2]
        expected = "does not match its signature"
    elif attack == "unsigned":
        data = data.replace(b"v2 for", b"v7 for")
        signature = b""
        expected = "has no signature"
    else:
        data, signature = _expired_bundle(repo)
        expected = "expired at 2021-01-02T00:00:00Z"
    served.wait_release(repo.forge("web-1", data, signature))

    done = run_agent(state, "run", "--once")
    assert done.returncode == 4, done.stdout + done.stderr
    assert expected in done.stdout
    assert "Traceback" not in done.stdout + done.stderr

    # Nothing ran, nothing new was staged, the last good release stays in force.
    assert machine_files(repo.target) == before
    assert sorted(p.name for p in (state / "releases").iterdir()) == staged_before
    info = status(state)
    assert info["current"] == second and info["lastGood"] == second
    # A forced run retries the bad release (rejected again) and still repairs
    # drift with the last good one.
    (repo.target / "version.txt").write_text("drift", encoding="utf-8")
    done = run_agent(state, "run", "--once", "--force")
    assert done.returncode == 4, done.stdout + done.stderr
    assert (repo.target / "version.txt").read_text() == "v2 for web-1 hello"

    # The provider got the rejection, with its reason.
    rejected = [r for r in served.runs("web-1") if r["status"] == "rejected"]
    assert len(rejected) == 1 and expected in rejected[0]["error"]


def _compile_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TENFRA, "compile", *args],
        capture_output=True,
        text=True,
        env=tenfra_env(),
        timeout=120,
    )


def test_rollback_by_reissue_is_accepted_and_a_replay_is_not(
    repo: Any, served: Any, enrolled: Path
) -> None:
    state = enrolled
    first = repo.compile("v1")
    served.wait_release(first)
    second = repo.compile("v2")
    served.wait_release(second)
    assert run_agent(state, "run", "--once").returncode == 0
    assert (repo.target / "version.txt").read_text() == "v2 for web-1 hello"

    # Serving the old release itself (what a provider pin does, or a replay by
    # a compromised storage) is refused: the agent never goes backwards.
    data, signature = repo.bundle(first, "web-1")
    served.wait_release(repo.forge("web-1", data, signature))
    done = run_agent(state, "run", "--once")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "older or replayed releases are rejected" in done.stdout
    assert (repo.target / "version.txt").read_text() == "v2 for web-1 hello"

    # Re-issue v1's content as the newest release.
    done = _compile_cli(
        "--rollback-to",
        first,
        "--out",
        repo.url,
        "--signing-key",
        str(repo.private_key),
        "--json",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    old_sequence, old_id = rel.parse_release_name(first) or (0, "")
    assert result["release"] == old_id
    assert result["sequence"] == 4  # after v1, v2 and the forged replay (3)
    reissued = result["name"]
    assert repo.latest() == reissued and reissued != first

    # Same content, fresh sequence and signatures.
    old_bundle = json.loads(repo.bundle(first, "web-1")[0])
    new_data, new_signature = repo.bundle(reissued, "web-1")
    new_bundle = json.loads(new_data)
    for volatile in ("sequence", "created", "expires"):
        old_bundle.pop(volatile), new_bundle.pop(volatile)
    assert new_bundle == old_bundle
    public = rel.load_public_key(repo.public_key)
    rel.check_signature(new_data, new_signature, public, what="re-issued bundle")

    served.wait_release(reissued)
    done = run_agent(state, "run", "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (repo.target / "version.txt").read_text() == "v1 for web-1 hello"
    assert status(state)["lastGood"] == reissued

    # Replaying the v2 release (sequence 2) or the original v1 is still refused.
    for old in (second, first):
        data, signature = repo.bundle(old, "web-1")
        served.wait_release(repo.forge("web-1", data, signature))
        done = run_agent(state, "run", "--once")
        assert done.returncode == 4, done.stdout + done.stderr
        assert "older or replayed releases are rejected" in done.stdout
    assert (repo.target / "version.txt").read_text() == "v1 for web-1 hello"
    assert old_sequence == 1


def test_rollback_refuses_a_tampered_or_foreign_release(
    repo: Any, tmp_path: Path
) -> None:
    first = repo.compile("v1")
    repo.compile("v2")

    # Signed with another key: not laundered into a trusted release.
    other = rel.generate_private_key()
    other_key = tmp_path / "other.key"
    other_key.write_bytes(rel.private_key_pem(other))
    done = _compile_cli(
        "--rollback-to", first, "--out", repo.url, "--signing-key", str(other_key)
    )
    assert done.returncode == 4, done.stdout + done.stderr
    assert f"Release {first}" in done.stderr and "cannot be re-issued" in done.stderr
    assert "--public-key" in done.stderr
    assert "Traceback" not in done.stderr

    # ... unless the operator names the key it was signed with (key rotation).
    done = _compile_cli(
        "--rollback-to",
        first,
        "--out",
        repo.url,
        "--signing-key",
        str(other_key),
        "--public-key",
        str(repo.public_key),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "re-issued" in done.stdout

    # A bundle changed in storage after signing is refused.
    bundle = repo.out / "releases" / first / "hosts" / "web-1.json"
    bundle.write_bytes(bundle.read_bytes().replace(b"v1 for", b"v6 for"))
    before = repo.latest()
    done = _compile_cli(
        "--rollback-to",
        first,
        "--out",
        repo.url,
        "--signing-key",
        str(repo.private_key),
    )
    assert done.returncode == 4, done.stdout + done.stderr
    assert "does not match the manifest's digest" in done.stderr
    assert repo.latest() == before


def test_rollback_usage_errors(repo: Any) -> None:
    first = repo.compile("v1")
    done = _compile_cli("--rollback-to", first, "--out", repo.url, "--unsigned")
    assert done.returncode == 2
    assert "--rollback-to needs --signing-key" in done.stderr
    done = _compile_cli(
        "--rollback-to",
        "0000000099",
        "--out",
        repo.url,
        "--signing-key",
        str(repo.private_key),
    )
    assert done.returncode == 5, done.stdout + done.stderr
    assert "No release '0000000099'" in done.stderr
    assert "Traceback" not in done.stderr
    done = _compile_cli(
        "--rollback-to",
        first,
        "--out",
        repo.url,
        "--signing-key",
        str(repo.private_key),
        "--sequence",
        "1",
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "not greater than the newest sequence 1" in done.stderr


def test_provider_rollback_says_how_to_reach_hosts_that_moved_on(
    app: Any, writer: Any
) -> None:
    import re

    writer.publish({"web-1": {}})
    second = writer.publish({"web-1": {"x": b"2"}})
    app.scan()
    page = app.client.get("/admin/login")
    csrf = re.search(rb'name="csrf" value="([^"]+)"', page.data)
    assert csrf
    login = app.client.post(
        "/admin/login",
        data={
            "csrf": csrf.group(1).decode(),
            "username": "admin",
            "password": "correct horse battery",
            "next": "/admin/",
        },
    )
    assert login.status_code == 302
    page = app.client.get("/admin/releases").get_data(as_text=True)
    assert "tenfra compile --rollback-to RELEASE" in page
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token
    answer = app.client.post(
        f"/admin/releases/{second.name}/rollback",
        data={"csrf": token.group(1)},
        follow_redirects=True,
    )
    text = answer.get_data(as_text=True)
    assert "agents refuse older releases" in text
    assert "tenfra compile --rollback-to RELEASE" in text
