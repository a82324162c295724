"""The report spool: reports are written to disk before sending, deleted after."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Callable, Optional

import attrs

from tenfra.errors import TransportError

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^[0-9]{20}-[0-9a-zA-Z_.-]{1,100}\.json$")

# A callable that posts one report and returns the HTTP status it got.
Sender = Callable[[dict[str, Any], str], int]


@attrs.define
class DeliveryResult:
    """What one delivery pass did."""

    sent: list[str] = attrs.Factory(list)  # report ids the provider accepted
    duplicates: list[str] = attrs.Factory(list)  # ids it already had
    refused: list[str] = attrs.Factory(list)  # ids moved aside (bad payload)
    remaining: int = 0
    error: Optional[str] = None  # why delivery stopped early


class Spool:
    """One JSON file per report, in the order they were written.

    A report is written atomically before any attempt to send it and deleted
    only after the provider confirmed it (201 new, 200 duplicate).  The
    report id travels as the ``Idempotency-Key``, so a report sent again
    after a lost answer or a restart is stored once.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.refused_folder = folder / "refused"

    def add(self, report: dict[str, Any]) -> Path:
        """Write ``report`` (it must carry an ``id``) to the spool, durably."""
        from tenfra.agent.state import atomic_write

        report_id = str(report["id"])
        if not re.match(r"^[0-9a-zA-Z_.-]{1,100}$", report_id):
            raise ValueError(f"report id {report_id!r} is not a safe file name")
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = f"{_clock_ns():020d}"
        path = self.folder / f"{stamp}-{report_id}.json"
        data = json.dumps(report, sort_keys=True, separators=(",", ":"))
        atomic_write(path, data.encode("utf-8"), mode=0o600)
        logger.debug("spooled report %s", report_id)
        return path

    def pending(self) -> list[Path]:
        """Spooled report files, oldest first."""
        try:
            names = sorted(p.name for p in self.folder.iterdir() if _NAME.match(p.name))
        except FileNotFoundError:
            return []
        return [self.folder / name for name in names]

    def __len__(self) -> int:
        return len(self.pending())

    def deliver(self, send: Sender, *, limit: Optional[int] = None) -> DeliveryResult:
        """Send pending reports oldest first; stop at the first transport error.

        A report the provider refuses as malformed (4xx other than 401/403/
        408/429) would block the queue for ever; it is moved to ``refused/``
        with a warning instead.
        """
        result = DeliveryResult()
        pending = self.pending()
        for index, path in enumerate(pending):
            if limit is not None and index >= limit:
                break
            try:
                report = json.loads(path.read_text(encoding="utf-8"))
                report_id = str(report["id"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logger.warning(
                    "moving unreadable spooled report %s aside: %s", path, exc
                )
                self._refuse(path)
                result.refused.append(path.name)
                continue
            try:
                status = send(report, report_id)
            except TransportError as exc:
                if exc.status is not None and _is_permanent(exc.status):
                    logger.warning(
                        "the provider refused report %s (%s); moved to %s",
                        report_id,
                        exc,
                        self.refused_folder,
                    )
                    self._refuse(path)
                    result.refused.append(report_id)
                    continue
                result.error = str(exc)
                break
            if status == 200:
                result.duplicates.append(report_id)
            else:
                result.sent.append(report_id)
            path.unlink(missing_ok=True)
            _fsync_dir(self.folder)
        result.remaining = len(self.pending())
        return result

    def _refuse(self, path: Path) -> None:
        self.refused_folder.mkdir(exist_ok=True)
        os.replace(path, self.refused_folder / path.name)


def _is_permanent(status: int) -> bool:
    return 400 <= status < 500 and status not in (401, 403, 408, 409, 429)


_last_stamp = 0


def _clock_ns() -> int:
    """A strictly increasing nanosecond stamp (keeps spool order stable)."""
    import time

    global _last_stamp
    stamp = max(time.time_ns(), _last_stamp + 1)
    _last_stamp = stamp
    return stamp


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
