"""The report hook contract: what the provider calls for each received run report.

A report hook is a class registered through ``tenfra_add_report_hooks``::

    @attrs.frozen(kw_only=True)
    class ChatOptions:
        room: str = option("Room to post to.")

    class Chat(ReportHook):
        '''Post failed runs to a chat room.'''

        name = "chat"
        Options = ChatOptions

        def deliver(self, report, host):
            ...

The provider validates each ``hooks`` entry of its configuration with
``Options`` (strict converter, located errors) at start-up.  For every stored
report it asks :meth:`ReportHook.wants` (cheap, in the request) and records a
delivery in its database; any replica then calls :meth:`ReportHook.deliver`
from a background thread, retrying with back-off.  A hook that raises is
logged and retried; it never blocks or fails the ingestion of a report.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

logger = logging.getLogger(__name__)


class ReportHook:
    """Base class of report hooks (see the module docstring)."""

    name: ClassVar[str] = ""
    Options: ClassVar[type[Any]]
    retries: ClassVar[int] = 5

    def __init__(self, options: Any, *, hook_name: str) -> None:
        self.options = options
        self.hook_name = hook_name

    def wants(self, report: dict[str, Any], host: str) -> bool:
        """Whether this report should be delivered (the hook's condition)."""
        return True

    def deliver(self, report: dict[str, Any], host: str) -> None:
        """Send the report somewhere; raise :class:`~tenfra.errors.TenfraError`
        (or any exception) to have the delivery retried later."""
        raise NotImplementedError
