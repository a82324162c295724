"""tenfra: pull-based configuration management with signed releases."""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("tenfra")
"""Decorator marking a function as the implementation of a tenfra hook."""

__all__ = ["__version__", "hookimpl"]
