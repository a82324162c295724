"""State directory: pointers, staging, assets, credential mode, the run lock."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from tenfra.agent.state import (
    CURRENT,
    LAST_GOOD,
    AgentConfig,
    RunLock,
    StateDir,
    safe_join,
    sha256_hex,
)
from tenfra.errors import ConfigError, UserError, ValidationError, VerificationError

NAME = "0000000007-0123456789abcdef0123"


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    s = StateDir(tmp_path / "state")
    s.ensure()
    return s


def test_ensure_creates_private_tree(state: StateDir) -> None:
    for sub in ("releases", "assets", "spool", "engine", "tmp"):
        assert (state.root / sub).is_dir()
    assert state.root.stat().st_mode & 0o777 == 0o700


def test_config_round_trip(state: StateDir) -> None:
    config = AgentConfig(provider="http://127.0.0.1:1", host="web-1", interval=5.0)
    state.save_config(config)
    assert state.load_config() == config
    assert state.config_path.stat().st_mode & 0o777 == 0o600


def test_missing_config_says_to_enrol(state: StateDir) -> None:
    with pytest.raises(ConfigError, match=r"not enrolled yet.*tenfra agent enroll"):
        state.load_config()


def test_bad_config_is_located(state: StateDir) -> None:
    state.config_path.write_text(
        "provider: http://x\nhost: a\ninterval: fast\n", encoding="utf-8"
    )
    with pytest.raises(ValidationError) as info:
        state.load_config()
    assert f"{state.config_path}:3" in str(info.value)
    assert "interval" in str(info.value)


def test_credential_is_0600_and_refused_when_readable(state: StateDir) -> None:
    state.save_credential("web-1.secret")
    assert state.credential_path.stat().st_mode & 0o777 == 0o600
    assert state.credential() == "web-1.secret"
    os.chmod(state.credential_path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        state.credential()


def test_stage_is_atomic_and_pointer_round_trips(state: StateDir) -> None:
    folder = state.stage(NAME, {"bundle.json": b"{}", "recipes/web/main.yaml": b"x"})
    assert (folder / "recipes/web/main.yaml").read_bytes() == b"x"
    assert list(state.tmp.iterdir()) == []
    assert state.pointer(CURRENT) is None
    state.set_pointer(CURRENT, NAME)
    assert state.pointer(CURRENT) == NAME


def test_stage_refuses_escaping_paths_and_leaves_nothing(state: StateDir) -> None:
    with pytest.raises(VerificationError, match="escapes"):
        state.stage(NAME, {"ok.txt": b"1", "../evil": b"2"})
    assert not (state.releases / NAME).exists()
    assert list(state.tmp.iterdir()) == []
    assert not (state.root / "evil").exists()


@pytest.mark.parametrize(
    "bad", ["/etc/passwd", "a/../../b", "", "a//b", "./a", "a\\b", "a\x00b"]
)
def test_safe_join_refuses(tmp_path: Path, bad: str) -> None:
    with pytest.raises(VerificationError):
        safe_join(tmp_path, bad)


def test_pointer_ignores_malformed_or_missing(state: StateDir) -> None:
    (state.root / CURRENT).write_text("../../etc\n", encoding="utf-8")
    assert state.pointer(CURRENT) is None
    (state.root / CURRENT).write_text(NAME + "\n", encoding="utf-8")
    assert state.pointer(CURRENT) is None  # the release folder does not exist
    with pytest.raises(VerificationError):
        state.set_pointer(LAST_GOOD, "nope")


def test_assets_are_content_addressed(state: StateDir) -> None:
    data = b"hello asset"
    digest = sha256_hex(data)
    assert not state.has_asset(digest)
    state.store_asset(digest, data)
    assert state.has_asset(digest)
    with pytest.raises(VerificationError, match="hashes to"):
        state.store_asset("0" * 64, data)
    assert not state.asset_path("0" * 64).exists()
    # A corrupted cache entry is dropped so it gets fetched again.
    state.asset_path(digest).write_bytes(b"corrupt")
    assert not state.has_asset(digest)
    assert not state.asset_path(digest).exists()
    with pytest.raises(VerificationError):
        state.asset_path("../x")


def test_prune_keeps_pointers(state: StateDir) -> None:
    names = [f"{i:010d}-{'a' * 20}" for i in range(1, 7)]
    for name in names:
        state.stage(name, {"bundle.json": b"{}"})
    state.set_pointer(LAST_GOOD, names[0])
    state.set_pointer(CURRENT, names[-1])
    state.prune_releases(keep=2)
    left = sorted(p.name for p in state.releases.iterdir())
    assert left == [names[0], names[4], names[5]]


def _hold_lock(path: str, ready: object, release: object) -> None:
    with RunLock(Path(path)):
        ready.set()  # type: ignore[attr-defined]
        release.wait(10)  # type: ignore[attr-defined]


def test_lock_excludes_a_second_process(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(str(path), ready, release))
    proc.start()
    try:
        assert ready.wait(10)
        with pytest.raises(UserError, match=rf"holds the lock .*pid {proc.pid}"):
            RunLock(path).acquire()
    finally:
        release.set()
        proc.join(10)
    with RunLock(path, wait=2.0):
        assert path.read_text().strip() == str(os.getpid())


def test_lock_is_freed_when_the_holder_dies(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(str(path), ready, release))
    proc.start()
    assert ready.wait(10)
    proc.kill()
    proc.join(10)
    with RunLock(path):
        pass
