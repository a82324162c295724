"""Template filters and globals shipped with tenfra."""

from __future__ import annotations

import logging
import shlex
from typing import Any

from tenfra import hookimpl

logger = logging.getLogger(__name__)


def quote(value: Any) -> str:
    """Quote ``value`` as one word for a POSIX shell (``shlex.quote``).

    Use it whenever a variable goes into a ``shell`` command, so that
    ``$(...)``, backticks, ``;`` or spaces in the value stay data:
    ``shell: "echo ${{ motd | quote }} > /etc/motd"``.
    """
    return shlex.quote(value if isinstance(value, str) else str(value))


@hookimpl
def tenfra_add_template_filters(registry: Any) -> None:
    registry.add_template_filter("quote", quote)
