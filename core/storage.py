"""Storage URLs through fsspec: opening, safe keys, atomic writes and batching.

Releases and assets live under a base URL that any fsspec filesystem can
serve (``file://``, ``s3://``, ``memory://``...).  This module is the only
place that talks to fsspec, so the compiler, the provider and the agent share
one set of rules:

* keys are built with :func:`safe_key`, which refuses ``..``, absolute paths,
  backslashes, NUL bytes and empty segments;
* a file appears whole or not at all: on a local disk it is written to a
  temporary name in the same folder and renamed; object stores (S3) publish an
  object only when its upload completes;
* ``s3://`` URLs take their options from the environment: the usual ``AWS_*``
  variables, and ``TENFRA_S3_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL``) for a
  server other than AWS.

fsspec is imported on first use, never at module import.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Iterable, Optional

from tenfra.errors import StorageError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

logger = logging.getLogger(__name__)

ENV_S3_ENDPOINT = "TENFRA_S3_ENDPOINT_URL"

# Upload batches for object stores: flushed at this many files or bytes.
BATCH_FILES = 64
BATCH_BYTES = 32 * 1024 * 1024
# Local writes: threads, and files queued at most.
LOCAL_THREADS = 8
LOCAL_IN_FLIGHT = 256


def safe_key(*parts: str) -> str:
    """Join key parts with ``/`` after checking every segment.

    Each part may itself contain ``/``.  Raises :class:`StorageError` for an
    empty segment, ``.`` or ``..``, a leading ``/``, a backslash or a NUL
    byte, so a name taken from a release can never leave its root.
    """
    segments: list[str] = []
    for part in parts:
        if not isinstance(part, str):
            raise StorageError(f"Storage key part {part!r} is not a string.")
        if "\\" in part or "\x00" in part:
            raise StorageError(
                f"Storage key {part!r} contains a backslash or a NUL byte; "
                "names in a release use '/' only."
            )
        if part.startswith("/"):
            raise StorageError(
                f"Storage key {part!r} is absolute; it must be relative to its root."
            )
        for segment in part.split("/"):
            if segment in ("", ".", ".."):
                raise StorageError(
                    f"Storage key {part!r} has an empty, '.' or '..' segment; "
                    "names must stay inside their root."
                )
            segments.append(segment)
    if not segments:
        raise StorageError("A storage key must not be empty.")
    return "/".join(segments)


def is_safe_key(key: str) -> bool:
    """Whether :func:`safe_key` accepts ``key``."""
    try:
        safe_key(key)
    except StorageError:
        return False
    return True


def storage_options(protocol: str) -> dict[str, Any]:
    """fsspec options for ``protocol`` taken from the environment."""
    if protocol not in ("s3", "s3a"):
        return {}
    options: dict[str, Any] = {}
    endpoint = os.environ.get(ENV_S3_ENDPOINT) or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["endpoint_url"] = endpoint
    key = os.environ.get("AWS_ACCESS_KEY_ID")
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        options["key"] = key
        options["secret"] = secret
        token = os.environ.get("AWS_SESSION_TOKEN")
        if token:
            options["token"] = token
    return options


def open_fs(url: str) -> tuple[AbstractFileSystem, str]:
    """The filesystem serving ``url`` and the root path inside it.

    A plain path (no ``scheme://``) is a local folder.  Raises
    :class:`StorageError` when the scheme is unknown or its package is missing.
    """
    import fsspec.core

    if not url:
        raise StorageError("The storage URL is empty; give a folder or a URL.")
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    try:
        fs, root = fsspec.core.url_to_fs(url, **storage_options(protocol))
    except ImportError as exc:
        raise StorageError(
            f"Storage URL {url!r} needs the Python package {exc.name or protocol!r}; "
            "install it (for S3: pip install 'tenfra[s3]')."
        ) from None
    except ValueError as exc:
        raise StorageError(
            f"Storage URL {url!r} cannot be used: {exc}. Use a folder, "
            "file://, s3:// or memory:// URL."
        ) from None
    return fs, str(root).rstrip("/") or "/"


def join(root: str, key: str) -> str:
    """``root/key`` for a key already checked by :func:`safe_key`."""
    return f"{root.rstrip('/')}/{key}" if root != "/" else f"/{key}"


def _is_local(fs: AbstractFileSystem) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


def _describe(fs: AbstractFileSystem, path: str) -> str:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return path if protocol == "file" else f"{protocol}://{path}"


def _storage_error(
    action: str, fs: AbstractFileSystem, path: str, exc: BaseException
) -> StorageError:
    detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return StorageError(
        f"Cannot {action} {_describe(fs, path)}: {detail}. Check that the location "
        "exists, is reachable and that the credentials allow it."
    )


def read_bytes(fs: AbstractFileSystem, path: str) -> bytes:
    """The content of ``path``; a missing file raises ``FileNotFoundError``."""
    try:
        data = fs.cat_file(path)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise _storage_error("read", fs, path, exc) from exc
    return bytes(data)


def read_optional(fs: AbstractFileSystem, path: str) -> Optional[bytes]:
    """The content of ``path``, or None when it does not exist."""
    try:
        return read_bytes(fs, path)
    except FileNotFoundError:
        return None


def exists(fs: AbstractFileSystem, path: str) -> bool:
    """Whether ``path`` exists (errors other than "missing" raise StorageError)."""
    try:
        return bool(fs.exists(path))
    except Exception as exc:
        raise _storage_error("check", fs, path, exc) from exc


def _write_local(path: str, data: bytes, durable: bool) -> None:
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_atomic(
    fs: AbstractFileSystem, path: str, data: bytes, *, durable: bool = False
) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one.

    Local files go through a temporary file and a rename (``durable`` also
    fsyncs it); object stores publish the object when the upload completes.
    """
    try:
        if _is_local(fs):
            _write_local(path, data, durable)
        else:
            fs.pipe_file(path, data)
    except Exception as exc:
        raise _storage_error("write", fs, path, exc) from exc


def list_dir(fs: AbstractFileSystem, path: str) -> list[str]:
    """Base names directly under ``path``; an absent folder gives ``[]``."""
    try:
        fs.invalidate_cache(path)
        entries = fs.ls(path, detail=False)
    except FileNotFoundError:
        return []
    except Exception as exc:
        raise _storage_error("list", fs, path, exc) from exc
    return sorted(str(entry).rstrip("/").rsplit("/", 1)[-1] for entry in entries)


class BatchWriter:
    """Writes many files with bounded memory.

    Local files are written atomically by a few threads (creating files is
    what costs on a local disk; the threads overlap that wait), with at most
    ``LOCAL_IN_FLIGHT`` files or ``BATCH_BYTES`` bytes queued.  For object
    stores the files are buffered and uploaded concurrently in batches of at
    most ``BATCH_FILES`` files or ``BATCH_BYTES`` bytes.  Call :meth:`flush`
    (or use the writer as a context manager) before relying on the files.
    """

    def __init__(self, fs: AbstractFileSystem) -> None:
        self.fs = fs
        self.local = _is_local(fs)
        self._pending: dict[str, bytes] = {}
        self._pending_bytes = 0
        self._futures: list[Future[None]] = []
        self._pool: Optional[ThreadPoolExecutor] = None
        self.files = 0
        self.bytes = 0

    def put(self, path: str, data: bytes) -> None:
        """Queue (or, locally, start writing) one file."""
        self.files += 1
        self.bytes += len(data)
        if self.local:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    LOCAL_THREADS, thread_name_prefix="tenfra-write"
                )
            if (
                len(self._futures) >= LOCAL_IN_FLIGHT
                or self._pending_bytes >= BATCH_BYTES
            ):
                self._wait()
            self._futures.append(self._pool.submit(write_atomic, self.fs, path, data))
            self._pending_bytes += len(data)
            return
        self._pending[path] = data
        self._pending_bytes += len(data)
        if len(self._pending) >= BATCH_FILES or self._pending_bytes >= BATCH_BYTES:
            self.flush()

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        for path, data in items:
            self.put(path, data)

    def _wait(self) -> None:
        futures, self._futures = self._futures, []
        if self.local:
            self._pending_bytes = 0
        for future in futures:
            future.result()  # re-raises the first StorageError

    def flush(self) -> None:
        """Finish every queued write."""
        self._wait()
        if not self._pending:
            return
        pending, self._pending, self._pending_bytes = self._pending, {}, 0
        try:
            self.fs.pipe(pending)
        except Exception as exc:
            first = next(iter(pending))
            raise _storage_error("write", self.fs, first, exc) from exc

    def close(self) -> None:
        """Stop the writer threads (after waiting for their writes)."""
        try:
            self._wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            self.close()
