"""Run reports: what happened to each task and recipe of one run on one host.

These classes are the one report format shared by ``tenfra run``, the test
runners, the agent (which spools and sends them) and the provider (which
validates and stores them).  :func:`report_to_json` / :func:`report_from_json`
are the wire format; secrets are masked before a report is built, never after.
"""

from __future__ import annotations

import enum
from typing import Any, Optional

import attrs

from tenfra.convert import converter


class Status(str, enum.Enum):
    """The status of a task, a recipe or a run."""

    OK = "ok"
    CHANGED = "changed"
    SKIPPED = "skipped"
    FAILED = "failed"
    WOULD_CHANGE = "would-change"  # check mode: applying would change something
    UNKNOWN = "unknown"  # check mode: the resource cannot know without applying
    REJECTED = "rejected"  # agent: the release was refused before anything ran

    @property
    def is_change(self) -> bool:
        return self in (Status.CHANGED, Status.WOULD_CHANGE)


# Order used to combine statuses: the "worst" one wins.
_RANK = {
    Status.SKIPPED: 0,
    Status.OK: 1,
    Status.UNKNOWN: 2,
    Status.WOULD_CHANGE: 3,
    Status.CHANGED: 4,
    Status.FAILED: 5,
    Status.REJECTED: 6,
}


def combine(statuses: list[Status]) -> Status:
    """The overall status of several results (failed beats changed beats ok)."""
    if not statuses:
        return Status.OK
    worst = max(statuses, key=_RANK.__getitem__)
    return Status.OK if worst is Status.SKIPPED else worst


def _structure_status(value: Any, _: Any) -> Status:
    from tenfra.convert import StrictTypeError

    try:
        return Status(value)
    except ValueError:
        known = ", ".join(status.value for status in Status)
        raise StrictTypeError(f"expected a status ({known}), got {value!r}") from None


# Status is a str subclass: without this hook the strict str hook would keep
# the plain string and ``status.value`` would fail after structuring.
converter.register_structure_hook(Status, _structure_status)


@attrs.define(kw_only=True)
class TaskReport:
    """The result of one task, as reported (sensitive values already masked)."""

    name: str
    type: str
    status: Status
    duration: float = 0.0
    diff: Optional[str] = None
    error: Optional[str] = None
    message: Optional[str] = None
    location: Optional[str] = None
    children: list[TaskReport] = attrs.Factory(list)

    @property
    def changed(self) -> bool:
        return self.status.is_change


@attrs.define(kw_only=True)
class RecipeReport:
    """The tasks and handlers of one recipe run."""

    id: str
    name: str
    status: Status
    duration: float = 0.0
    tasks: list[TaskReport] = attrs.Factory(list)
    error: Optional[str] = None

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {s.value: 0 for s in Status}
        for task in self.tasks:
            counts[task.status.value] += 1
        return counts


@attrs.define(kw_only=True)
class RunReport:
    """One run on one host: every recipe applied, with overall status."""

    id: str
    host: str
    started: str  # ISO 8601, UTC
    finished: str
    status: Status
    check: bool = False
    release: Optional[str] = None
    sequence: Optional[int] = None
    recipes: list[RecipeReport] = attrs.Factory(list)
    error: Optional[str] = None
    facts: dict[str, Any] = attrs.Factory(dict)

    def counts(self) -> dict[str, int]:
        """How many tasks ended in each status, over all recipes."""
        total: dict[str, int] = {s.value: 0 for s in Status}
        for recipe in self.recipes:
            for key, value in recipe.counts().items():
                total[key] += value
        return total


def report_to_json(report: RunReport) -> dict[str, Any]:
    """The JSON-ready mapping of a report (camelCase keys)."""
    data: dict[str, Any] = converter.unstructure(report)
    data["counts"] = report.counts()
    return data


def report_from_json(data: Any) -> RunReport:
    """Validate and build a report; raises ValidationError on a bad payload."""
    from tenfra.convert import structure

    payload = dict(data) if isinstance(data, dict) else data
    if isinstance(payload, dict):
        payload.pop("counts", None)
    return structure(payload, RunReport, source="report", what="the report")
