"""Apply resource types from a JSON list of steps and print JSON results.

Run inside a test container (``python3 apply_steps.py '<json>'``) with the
installed tenfra on PYTHONPATH; it needs no engine and no pytest.  Each step
is ``{"type": ..., "options": {...}, "check": false}``; each result is
``{"status", "values", "message", "diff", "error"}``.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from pathlib import Path
from typing import Any, Mapping, Optional

from tenfra.convert import structure
from tenfra.errors import TenfraError
from tenfra.pluginmanager import PluginInfo, PluginManager


class StepContext:
    def __init__(self, check: bool) -> None:
        self.host = "container"
        self.check = check
        self.diff = True
        self.sensitive = False
        self.timeout: Optional[float] = 600.0
        self.log = logging.LoggerAdapter(logging.getLogger("tenfra.steps"), {})
        self.recipe_id = "steps"
        self.recipe_dir = Path("/tmp/steps")
        self.state_dir = Path("/tmp/steps-state")

    @property
    def facts(self) -> Mapping[str, Any]:
        return {"os_family": "debian"}

    @property
    def vars(self) -> Mapping[str, Any]:
        return {}

    def asset(self, name: str) -> Path:
        return self.recipe_dir / "assets" / name

    def render_text(self, text: str, extra: Optional[Mapping[str, Any]] = None) -> str:
        return text


def main() -> None:
    manager = PluginManager(load_entry_points=False)
    for name in ("files", "commands", "system", "network"):
        module = importlib.import_module(f"tenfra.plugins.{name}")
        info = PluginInfo(name, "test", "builtin", "tenfra", None, module.__name__)
        manager.register(module, info)
    results = []
    for step in json.loads(sys.argv[1]):
        cls = manager.resource_types[step["type"]]
        ctx = StepContext(bool(step.get("check", False)))
        try:
            options = structure(step["options"], cls.Options, source="step")
            result = cls().apply(options, ctx)
        except TenfraError as exc:
            results.append({"status": "error", "error": str(exc)})
            continue
        results.append(
            {
                "status": result.status.value,
                "values": result.values,
                "message": result.message,
                "diff": result.diff,
                "error": None,
            }
        )
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
