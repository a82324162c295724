"""tenfra.fileops: modes, atomic writes, metadata, diffs and safe extraction."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

import attrs
import pytest

from tenfra.convert import structure
from tenfra.errors import TaskError, ValidationError
from tenfra.fileops import (
    Metadata,
    Mode,
    atomic_write,
    ensure_content,
    safe_extract,
    unified_diff,
)
from tenfra.yamlio import load_yaml


@attrs.frozen
class WithMode:
    mode: Optional[Mode] = None


@pytest.mark.parametrize(
    ("text", "current", "is_dir", "expected"),
    [
        ("0644", 0o777, False, 0o644),
        ("644", 0o000, False, 0o644),
        ("0o750", 0o000, True, 0o750),
        ("4755", 0o000, False, 0o4755),
        ("u=rw,go=r", 0o777, False, 0o644),
        ("u+x", 0o644, False, 0o744),
        ("go-w", 0o666, False, 0o644),
        ("a+X", 0o644, False, 0o644),
        ("a+X", 0o644, True, 0o755),
        ("a+X", 0o744, False, 0o755),
        ("+x", 0o600, False, 0o711),
        ("o=", 0o777, False, 0o770),
        ("g=u", 0o740, False, 0o770),
        ("u+s", 0o755, False, 0o4755),
    ],
)
def test_mode_apply(text: str, current: int, is_dir: bool, expected: int) -> None:
    assert Mode(text).apply(current, is_dir=is_dir) == expected


@pytest.mark.parametrize("bad", ["", "rwxr-xr-x", "0999", "u+q", "1", "u=rw;g=r"])
def test_mode_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="file mode"):
        Mode(bad)


def test_mode_from_yaml_quoted_octal_and_plain_int() -> None:
    good = load_yaml('a: "0640"\nb: 0o640\n', "t.yaml")
    assert structure({"mode": good["a"]}, WithMode, source="t").mode == Mode("0640")
    octal = structure({"mode": good["b"]}, WithMode, source="t").mode
    assert octal is not None and octal.apply(0) == 0o640
    doc = load_yaml("mode: 0640\n", "t.yaml")
    with pytest.raises(ValidationError) as info:
        structure(doc, WithMode, source="t.yaml")
    message = str(info.value)
    assert message.startswith("t.yaml:1:7: ")
    assert 'write "0640" or 0o640' in message
    doc = load_yaml("mode: true\n", "t.yaml")
    with pytest.raises(ValidationError, match="expected a file mode"):
        structure(doc, WithMode, source="t.yaml")


def test_atomic_write_replaces_and_keeps_mode(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("old")
    target.chmod(0o640)
    atomic_write(target, b"new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    atomic_write(target, b"newer", mode=0o600)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f"], "no temporary file left"


def test_atomic_write_readers_never_see_partial_content(tmp_path: Path) -> None:
    target = tmp_path / "f"
    one, two = b"a" * 300_000, b"b" * 300_000
    target.write_bytes(one)
    bad: list[int] = []
    reads = 0
    stop = threading.Event()

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            data = target.read_bytes()
            reads += 1
            if data not in (one, two):
                bad.append(len(data))

    thread = threading.Thread(target=reader)
    thread.start()
    for index in range(40):
        atomic_write(target, two if index % 2 else one)
    stop.set()
    thread.join()
    assert reads > 0
    assert bad == [], "a reader saw a partial file"


def test_atomic_write_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="does not exist; create it first"):
        atomic_write(tmp_path / "no" / "f", b"x")


def test_atomic_write_sets_owner(tmp_path: Path) -> None:
    target = tmp_path / "f"
    atomic_write(target, b"x", uid=65534, gid=65534)
    assert (target.stat().st_uid, target.stat().st_gid) == (65534, 65534)


def test_ensure_content_owner_by_name_and_id(tmp_path: Path) -> None:
    target = tmp_path / "f"
    meta = Metadata(owner="nobody", group="65534")
    outcome = ensure_content(
        target, b"x", meta, check=False, diff=True, sensitive=False
    )
    assert outcome.created and outcome.changed
    assert target.stat().st_uid == 65534 and target.stat().st_gid == 65534
    again = ensure_content(target, b"x", meta, check=False, diff=True, sensitive=False)
    assert not again.changed
    os.chown(target, 0, 0)
    fixed = ensure_content(target, b"x", meta, check=False, diff=True, sensitive=False)
    assert fixed.changes == ["owner root -> nobody", "group root -> nogroup"]


def test_unchanged_file_costs_well_under_a_millisecond(tmp_path: Path) -> None:
    target = tmp_path / "f"
    data = b"line\n" * 200
    meta = Metadata(mode=Mode("0644"))
    ensure_content(target, data, meta, check=False, diff=False, sensitive=False)
    rounds = 2000
    started = time.perf_counter()
    for _ in range(rounds):
        ensure_content(target, data, meta, check=False, diff=False, sensitive=False)
    per_call = (time.perf_counter() - started) / rounds
    assert per_call < 0.0005, f"{per_call * 1e6:.0f} µs per unchanged file"


def test_unified_diff_text_binary_and_sensitive() -> None:
    diff = unified_diff(b"a\nb\n", b"a\nc", "/etc/x")
    assert diff is not None
    assert "--- a/etc/x" in diff and "+++ b/etc/x" in diff
    assert "-b\n" in diff and "+c\n\\ No newline at end of file" in diff
    assert unified_diff(b"same", b"same", "x") is None
    assert "Binary files" in (unified_diff(b"\0\1", b"\0\2", "x") or "")
    hidden = unified_diff(b"pw=old", b"pw=canary", "x", sensitive=True) or ""
    assert "canary" not in hidden and "old" not in hidden
    assert "/dev/null" in (unified_diff(None, b"new\n", "/x") or "")


def _tar(members: list[tuple[str, Any]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tf:
        for name, spec in members:
            info = tarfile.TarInfo(name)
            if isinstance(spec, tuple):
                info.type, info.linkname = spec
                tf.addfile(info)
            else:
                info.size = len(spec)
                info.mode = 0o4755
                tf.addfile(info, io.BytesIO(spec))
    return buffer.getvalue()


def test_safe_extract_drops_setuid_and_refuses_existing_links(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar"
    archive.write_bytes(_tar([("bin/tool", b"x")]))
    out = tmp_path / "out"
    assert safe_extract(archive, out) == ["bin/tool"]
    assert stat.S_IMODE((out / "bin/tool").stat().st_mode) == 0o755

    outside = tmp_path / "outside"
    outside.mkdir()
    second = tmp_path / "second"
    second.mkdir()
    (second / "dir").symlink_to(outside)
    archive.write_bytes(_tar([("dir/file", b"x")]))
    with pytest.raises(TaskError, match="through a symbolic link"):
        safe_extract(archive, second)
    assert list(outside.iterdir()) == []


def test_safe_extract_refuses_devices(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar"
    archive.write_bytes(_tar([("null", (tarfile.CHRTYPE, ""))]))
    with pytest.raises(TaskError, match="a device or pipe"):
        safe_extract(archive, tmp_path / "out")


def test_safe_extract_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "plain.txt"
    path.write_text("hello")
    with pytest.raises(TaskError, match="neither a tar nor a zip archive"):
        safe_extract(path, tmp_path / "out")
