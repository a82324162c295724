"""Facts: a lazy, read-only mapping over the facts plugins register.

Each fact is a function registered with ``registry.add_fact(name, function)``.
:class:`Facts` calls a function the first time its fact is read and keeps the
value, so a recipe that only reads ``facts.os_family`` never pays for
``facts.addresses``.  :meth:`Facts.gather_all` reads everything (the agent
sends the result with its reports).  A fact function that fails logs a warning
and gives ``None``; it never aborts a run.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Iterator, Mapping, Optional

logger = logging.getLogger(__name__)

_MISSING = object()


class Facts(Mapping[str, Any]):
    """Facts of this host, each gathered on first access and cached."""

    def __init__(
        self,
        functions: Optional[Mapping[str, Callable[[], Any]]] = None,
        *,
        overrides: Optional[Mapping[str, Any]] = None,
    ) -> None:
        """``functions`` defaults to the ``fact`` registry of the plugin manager.

        ``overrides`` fixes values without calling functions (tests, and
        ``tenfra run --fact name=value``).
        """
        if functions is None:
            from tenfra.pluginmanager import get_plugin_manager

            registry = get_plugin_manager().facts
            functions = {name: registry[name] for name in registry}
        self._functions = dict(functions)
        self._values: dict[str, Any] = dict(overrides or {})
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> Any:
        value = self._values.get(name, _MISSING)
        if value is not _MISSING:
            return value
        function = self._functions.get(name)
        if function is None:
            raise KeyError(name)
        with self._lock:
            value = self._values.get(name, _MISSING)
            if value is _MISSING:
                value = _call(name, function)
                self._values[name] = value
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(set(self._functions) | set(self._values)))

    def __len__(self) -> int:
        return len(set(self._functions) | set(self._values))

    def __contains__(self, name: object) -> bool:
        return name in self._functions or name in self._values

    def __getattr__(self, name: str) -> Any:
        # Templates write facts.os_family; Jinja2 tries attributes first.
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def gathered(self) -> dict[str, Any]:
        """The facts read so far (no function is called)."""
        return dict(self._values)

    def gather_all(self) -> dict[str, Any]:
        """Every fact, gathering the ones not read yet."""
        return {name: self[name] for name in self}

    def __repr__(self) -> str:
        return f"Facts(gathered={sorted(self._values)})"


def _call(name: str, function: Callable[[], Any]) -> Any:
    try:
        return function()
    except Exception as exc:
        logger.warning(
            "fact %r could not be gathered (%s: %s); it is null for this run",
            name,
            type(exc).__name__,
            exc,
        )
        return None


def gather_all() -> dict[str, Any]:
    """Every registered fact of this host, gathered now."""
    return Facts().gather_all()
