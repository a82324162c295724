"""Local state of tenfra on a host: pending handler notifications, written atomically.

The state folder is ``$TENFRA_STATE_DIR``, else ``~/.local/state/tenfra``
(``$XDG_STATE_HOME/tenfra`` when that is set); the agent passes its own.
A notification is written the moment a task notifies a handler and removed
only after the handler ran, so a failure or a reboot in between does not
lose it: the next run of the recipe runs the handler.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Optional, Union

from tenfra.errors import UserError

logger = logging.getLogger(__name__)

ENV_STATE_DIR = "TENFRA_STATE_DIR"
HANDLERS_FILE = "pending-handlers.json"


def default_state_dir() -> Path:
    """``$TENFRA_STATE_DIR``, or the XDG state folder of the user."""
    configured = os.environ.get(ENV_STATE_DIR)
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "tenfra"


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    try:
        dir_fd = os.open(str(path.parent), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


class State:
    """The state folder of one host (see the module docstring)."""

    def __init__(self, path: Union[str, Path, None] = None) -> None:
        self.path = Path(path) if path is not None else default_state_dir()
        self._lock = threading.Lock()

    @property
    def handlers_file(self) -> Path:
        return self.path / HANDLERS_FILE

    def _read(self) -> dict[str, dict[str, list[str]]]:
        try:
            text = self.handlers_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise UserError(
                f"{self.handlers_file}: cannot read tenfra's state: {exc.strerror}; "
                f"check the permissions or set {ENV_STATE_DIR}."
            ) from None
        try:
            data: Any = json.loads(text)
        except ValueError:
            logger.warning(
                "%s is not valid JSON; pending handlers in it are lost",
                self.handlers_file,
            )
            return {}
        if not isinstance(data, dict):
            return {}
        return {
            str(host): {
                str(recipe): [str(name) for name in names]
                for recipe, names in recipes.items()
                if isinstance(names, list)
            }
            for host, recipes in data.items()
            if isinstance(recipes, dict)
        }

    def _write(self, data: dict[str, dict[str, list[str]]]) -> None:
        cleaned = {
            host: {recipe: names for recipe, names in recipes.items() if names}
            for host, recipes in data.items()
        }
        cleaned = {host: recipes for host, recipes in cleaned.items() if recipes}
        payload = json.dumps(cleaned, indent=2, sort_keys=True).encode("utf-8")
        try:
            write_atomic(self.handlers_file, payload)
        except OSError as exc:
            raise UserError(
                f"{self.handlers_file}: cannot write tenfra's state: {exc.strerror}; "
                f"check the permissions or set {ENV_STATE_DIR}."
            ) from None

    def pending_handlers(self, host: str, recipe: str) -> list[str]:
        """Handlers notified for ``recipe`` on ``host`` that have not run yet."""
        with self._lock:
            return list(self._read().get(host, {}).get(recipe, []))

    def add_pending_handlers(
        self, host: str, recipe: str, names: list[str]
    ) -> list[str]:
        """Persist notifications; returns the full pending list of the recipe."""
        with self._lock:
            data = self._read()
            pending = data.setdefault(host, {}).setdefault(recipe, [])
            added = False
            for name in names:
                if name not in pending:
                    pending.append(name)
                    added = True
            if added:
                self._write(data)
            return list(pending)

    def remove_pending_handler(self, host: str, recipe: str, name: str) -> None:
        """Forget a notification once its handler ran."""
        with self._lock:
            data = self._read()
            pending = data.get(host, {}).get(recipe)
            if pending and name in pending:
                pending.remove(name)
                self._write(data)


def open_state(path: Optional[Union[str, Path]] = None) -> State:
    """The :class:`State` of ``path`` (default: :func:`default_state_dir`)."""
    return State(path)
