"""Storage helpers: safe keys, atomic writes, batching, listing, env options."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import fsspec
import pytest

from tenfra import storage
from tenfra.errors import StorageError


@pytest.mark.parametrize(
    "parts",
    [
        ("..",),
        ("a/../b",),
        ("a", ".."),
        ("/etc/passwd",),
        ("a\\b",),
        ("a\x00b",),
        ("a//b",),
        ("a/",),
        ("",),
        (".",),
        ("hosts", "./x"),
    ],
)
def test_safe_key_rejects_escapes(parts: tuple[str, ...]) -> None:
    with pytest.raises(StorageError) as info:
        storage.safe_key(*parts)
    assert "key" in str(info.value)
    assert not storage.is_safe_key("/".join(parts))


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("a",), "a"),
        (
            ("releases", "0001-x", "hosts/web-01.json"),
            "releases/0001-x/hosts/web-01.json",
        ),
        (("a.b..c",), "a.b..c"),
    ],
)
def test_safe_key_joins(parts: tuple[str, ...], expected: str) -> None:
    assert storage.safe_key(*parts) == expected


def test_safe_key_rejects_nothing() -> None:
    with pytest.raises(StorageError):
        storage.safe_key()


def test_open_fs_plain_path_is_local(tmp_path: Path) -> None:
    fs, root = storage.open_fs(str(tmp_path))
    assert "file" in fs.protocol
    assert root == str(tmp_path)
    fs2, root2 = storage.open_fs(f"file://{tmp_path}/")
    assert root2 == str(tmp_path)
    assert type(fs2) is type(fs)


def test_open_fs_unknown_scheme_is_a_storage_error() -> None:
    with pytest.raises(StorageError) as info:
        storage.open_fs("nosuchscheme://x/y")
    assert "nosuchscheme://x/y" in str(info.value)


def test_s3_options_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENFRA_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    assert storage.storage_options("s3") == {
        "endpoint_url": "http://127.0.0.1:9",
        "key": "k",
        "secret": "s",
    }
    assert storage.storage_options("file") == {}


def test_atomic_local_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    fs, root = storage.open_fs(str(tmp_path))
    target = storage.join(root, "a/b/c.json")
    storage.write_atomic(fs, target, b"one")
    storage.write_atomic(fs, target, b"two", durable=True)
    assert Path(target).read_bytes() == b"two"
    assert sorted(os.listdir(tmp_path / "a" / "b")) == ["c.json"]
    assert storage.read_bytes(fs, target) == b"two"
    assert storage.read_optional(fs, storage.join(root, "missing")) is None


def test_atomic_write_failure_keeps_old_content(tmp_path: Path) -> None:
    fs, root = storage.open_fs(str(tmp_path))
    target = storage.join(root, "file")
    storage.write_atomic(fs, target, b"old")

    with pytest.raises(StorageError):
        storage.write_atomic(fs, target, object())  # type: ignore[arg-type]
    assert Path(target).read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["file"]


def test_unwritable_location_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    fs, root = storage.open_fs(str(tmp_path))
    with pytest.raises(StorageError) as info:
        storage.write_atomic(fs, storage.join(root, "blocker/x"), b"data")
    assert "Cannot write" in str(info.value)
    assert "blocker" in str(info.value)


def test_batch_writer_memory_filesystem() -> None:
    url = f"memory://tenfra-{uuid.uuid4().hex}"
    fs, root = storage.open_fs(url)
    with storage.BatchWriter(fs) as writer:
        for index in range(storage.BATCH_FILES + 5):
            writer.put(storage.join(root, f"d/{index:03d}"), str(index).encode())
    assert writer.files == storage.BATCH_FILES + 5
    names = storage.list_dir(fs, storage.join(root, "d"))
    assert len(names) == storage.BATCH_FILES + 5
    assert storage.read_bytes(fs, storage.join(root, "d/007")) == b"7"
    assert storage.list_dir(fs, storage.join(root, "nothing-here")) == []
    fsspec.filesystem("memory").rm(root, recursive=True)


def test_batch_writer_local(tmp_path: Path) -> None:
    fs, root = storage.open_fs(str(tmp_path))
    with storage.BatchWriter(fs) as writer:
        writer.put_many((storage.join(root, f"x/{i}"), b"z" * i) for i in range(3))
    assert writer.bytes == 3
    assert sorted(os.listdir(tmp_path / "x")) == ["0", "1", "2"]


def test_batch_writer_reports_local_failures(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file, not a folder")
    fs, root = storage.open_fs(str(tmp_path))
    with pytest.raises(StorageError, match="blocker"), storage.BatchWriter(fs) as w:
        for index in range(5):
            w.put(storage.join(root, f"blocker/{index}"), b"data")
