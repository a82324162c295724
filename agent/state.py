"""The agent's state directory: configuration, releases, pointers, assets, lock."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Optional, Union

import attrs

from tenfra.errors import ConfigError, UserError, VerificationError

logger = logging.getLogger(__name__)

DEFAULT_STATE_DIR = "/var/lib/tenfra"
ENV_STATE_DIR = "TENFRA_STATE_DIR"

CONFIG_FILE = "agent.yaml"
CREDENTIAL_FILE = "credential"
PUBLIC_KEY_FILE = "release.pub"
CURRENT = "current"
LAST_GOOD = "last-good"
LAST_RUN = "last-run.json"
BOOTSTRAPPED = "bootstrapped"
LOCK_FILE = "lock"

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_RELEASE_DIR = re.compile(r"^[0-9]{10}-[0-9a-zA-Z]{1,64}$")


def default_state_dir() -> Path:
    """``$TENFRA_STATE_DIR`` or ``/var/lib/tenfra``."""
    return Path(os.environ.get(ENV_STATE_DIR) or DEFAULT_STATE_DIR)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename)."""
    from tenfra.fileops import atomic_write as write

    write(path, data, mode=mode)


def atomic_write_json(path: Path, value: Any, *, mode: int = 0o644) -> None:
    """Write ``value`` as indented JSON to ``path`` atomically."""
    text = json.dumps(value, indent=2, sort_keys=True) + "\n"
    atomic_write(path, text.encode("utf-8"), mode=mode)


def read_json(path: Path) -> Any:
    """Read a JSON state file; a missing file is ``None``."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UserError(
            f"{path}: the agent state file is unreadable ({exc}); remove it and "
            "run the agent again to rebuild it."
        ) from None


def sha256_hex(data: bytes) -> str:
    """The lowercase hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


@attrs.define(kw_only=True)
class AgentConfig:
    """The agent's configuration file (``agent.yaml`` in the state directory)."""

    provider: str = attrs.field(
        metadata={"description": "Base URL of the provider, e.g. https://cfg:8080."}
    )
    host: str = attrs.field(metadata={"description": "This host's name."})
    interval: float = attrs.field(
        default=300.0,
        metadata={"description": "Seconds between two polls of the provider."},
    )
    splay: float = attrs.field(
        default=60.0,
        metadata={"description": "Up to this many random seconds added to a poll."},
    )
    repair_interval: float = attrs.field(
        default=1800.0,
        metadata={
            "description": "Seconds after which the current release is applied "
            "again to repair drift, even when nothing new was released."
        },
    )
    backoff_max: float = attrs.field(
        default=600.0,
        metadata={"description": "Longest wait between two polls after errors."},
    )
    ca_file: Optional[str] = attrs.field(
        default=None,
        metadata={"description": "CA bundle to check the provider's certificate."},
    )
    timeout: float = attrs.field(
        default=30.0, metadata={"description": "HTTP timeout in seconds."}
    )


class StateDir:
    """Every piece of local agent state, under one directory.

    Layout::

        agent.yaml            configuration (provider URL, host name, timings)
        credential            this host's provider credential (mode 0600)
        release.pub           the release signing public key
        releases/<dir>/       verified releases, staged atomically
        current, last-good    pointers: the name of a folder under releases/
        assets/<sha256>       content-addressed asset cache
        spool/                reports waiting for delivery
        engine/               the engine's own state (pending handlers)
        last-run.json         summary of the last run, for ``agent status``
        lock                  held while a run is in progress
    """

    def __init__(self, root: Union[str, Path]) -> None:
        self.root = Path(root)

    # -- paths ----------------------------------------------------------------------

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    @property
    def assets(self) -> Path:
        return self.root / "assets"

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    @property
    def engine(self) -> Path:
        return self.root / "engine"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def credential_path(self) -> Path:
        return self.root / CREDENTIAL_FILE

    @property
    def public_key_path(self) -> Path:
        return self.root / PUBLIC_KEY_FILE

    def ensure(self) -> None:
        """Create the directory tree (private to the owner)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            for sub in (self.releases, self.assets, self.spool, self.engine, self.tmp):
                sub.mkdir(exist_ok=True, mode=0o700)
        except OSError as exc:
            raise UserError(
                f"Cannot create the agent state directory {str(self.root)!r}: "
                f"{exc.strerror}. Run the agent as root, or choose another folder "
                f"with --state-dir or {ENV_STATE_DIR}."
            ) from None

    # -- configuration --------------------------------------------------------------

    def load_config(self) -> AgentConfig:
        """Read ``agent.yaml``; tells the user to enrol when it is missing."""
        from tenfra.convert import structure
        from tenfra.yamlio import load_yaml_file

        if not self.config_path.is_file():
            raise ConfigError(
                f"{self.config_path}: the agent is not enrolled yet; run "
                "'tenfra agent enroll --provider URL --host NAME --token TOKEN "
                "--public-key FILE' first."
            )
        data = load_yaml_file(self.config_path)
        return structure(
            data, AgentConfig, source=str(self.config_path), what="the agent config"
        )

    def save_config(self, config: AgentConfig) -> None:
        from tenfra.convert import unstructure
        from tenfra.yamlio import dump_yaml

        data = {k: v for k, v in unstructure(config).items() if v is not None}
        atomic_write(self.config_path, dump_yaml(data).encode("utf-8"), mode=0o600)

    def credential(self) -> str:
        try:
            text = self.credential_path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise ConfigError(
                f"{self.credential_path}: no provider credential; enrol the agent "
                "with 'tenfra agent enroll'."
            ) from None
        mode = self.credential_path.stat().st_mode & 0o777
        if mode & 0o077:
            raise ConfigError(
                f"{self.credential_path}: the credential is readable by other users "
                f"(mode {mode:04o}); run 'chmod 600 {self.credential_path}'."
            )
        return text

    def save_credential(self, credential: str) -> None:
        atomic_write(self.credential_path, credential.encode("utf-8"), mode=0o600)

    def enroll_request(self) -> str:
        """The secret naming this agent's approval request (created once, 0600)."""
        import secrets

        path = self.root / "enroll-request"
        try:
            return path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            secret = secrets.token_urlsafe(32)
            atomic_write(path, secret.encode("utf-8"), mode=0o600)
            return secret

    def public_key(self) -> bytes:
        try:
            return self.public_key_path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(
                f"{self.public_key_path}: the release public key is missing; pass "
                "it to 'tenfra agent enroll --public-key FILE'."
            ) from None

    def save_public_key(self, data: bytes) -> None:
        atomic_write(self.public_key_path, data, mode=0o644)

    # -- releases and pointers ------------------------------------------------------

    def release_dir(self, name: str) -> Path:
        if not _RELEASE_DIR.match(name):
            raise VerificationError(
                f"Refusing the release folder name {name!r}: expected "
                "'<10-digit sequence>-<release id>'."
            )
        return self.releases / name

    def pointer(self, which: str) -> Optional[str]:
        """The release folder named by pointer ``current`` or ``last-good``."""
        try:
            name = (self.root / which).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        if not name or not _RELEASE_DIR.match(name):
            logger.warning("ignoring the malformed %s pointer %r", which, name)
            return None
        if not (self.releases / name).is_dir():
            logger.warning("the %s pointer names a missing release %s", which, name)
            return None
        return name

    def set_pointer(self, which: str, name: str) -> None:
        self.release_dir(name)  # validates the name
        atomic_write(self.root / which, (name + "\n").encode("utf-8"))

    def stage(self, name: str, files: dict[str, bytes]) -> Path:
        """Write a verified release's files into ``releases/<name>`` atomically.

        The files are written into a temporary folder that is renamed into
        place, so a crash never leaves a half-written release.  Relative
        paths must stay inside the folder.
        """
        target = self.release_dir(name)
        if target.is_dir():
            return target
        self.tmp.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=self.tmp))
        try:
            for relative, data in sorted(files.items()):
                path = safe_join(work, relative)
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
            os.rename(work, target)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        logger.info("staged release %s", name)
        return target

    def prune_releases(self, keep: int = 3) -> None:
        """Remove old releases; ``current`` and ``last-good`` always stay."""
        protected = {self.pointer(CURRENT), self.pointer(LAST_GOOD)}
        names = sorted(
            p.name for p in self.releases.iterdir() if _RELEASE_DIR.match(p.name)
        )
        for name in names[:-keep] if keep else names:
            if name not in protected:
                shutil.rmtree(self.releases / name, ignore_errors=True)

    # -- assets ---------------------------------------------------------------------

    def asset_path(self, digest: str) -> Path:
        if not _DIGEST.match(digest):
            raise VerificationError(
                f"Refusing the asset name {digest!r}: expected a lowercase sha256."
            )
        return self.assets / digest

    def has_asset(self, digest: str) -> bool:
        """True when the cached asset exists and its content matches its name."""
        path = self.asset_path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return False
        if sha256_hex(data) != digest:
            logger.warning("cached asset %s is corrupt; fetching it again", digest)
            path.unlink(missing_ok=True)
            return False
        return True

    def store_asset(self, digest: str, data: bytes) -> Path:
        """Store an asset after checking that its sha256 is ``digest``."""
        path = self.asset_path(digest)
        actual = sha256_hex(data)
        if actual != digest:
            raise VerificationError(
                f"Asset {digest} was rejected: its content hashes to {actual}; the "
                "provider or its storage served the wrong bytes."
            )
        atomic_write(path, data, mode=0o600)
        return path

    # -- last run and bootstrap -----------------------------------------------------

    def last_run(self) -> Optional[dict[str, Any]]:
        data = read_json(self.root / LAST_RUN)
        return data if isinstance(data, dict) else None

    def save_last_run(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.root / LAST_RUN, summary)

    def bootstrapped(self) -> bool:
        return (self.root / BOOTSTRAPPED).exists()

    def mark_bootstrapped(self, release: str) -> None:
        atomic_write(self.root / BOOTSTRAPPED, (release + "\n").encode("utf-8"))


def safe_join(root: Path, relative: str) -> Path:
    """``root / relative``, refusing absolute paths, ``..`` and empty parts."""
    parts = relative.split("/")
    if (
        not relative
        or relative.startswith("/")
        or "\\" in relative
        or "\x00" in relative
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise VerificationError(
            f"Refusing the path {relative!r} from a release: it is empty, absolute "
            "or escapes its folder."
        )
    return root.joinpath(*parts)


class RunLock:
    """An exclusive ``fcntl`` lock on the state directory's ``lock`` file.

    Only one agent run (or ``enroll``) at a time; the kernel frees the lock
    when the process dies, so a crash never leaves a stale lock behind.
    """

    def __init__(self, path: Path, *, wait: float = 0.0) -> None:
        self.path = path
        self.wait = wait
        self._fd: Optional[int] = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    os.close(fd)
                    raise UserError(
                        f"Another agent run holds the lock {self.path}"
                        f"{f' (pid {holder})' if holder else ''}; wait for it to "
                        "finish or stop that process first."
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
